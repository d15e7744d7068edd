"""Per-shard metadata parquet (every row, failures included); the `_stats.json` figures are
stats.counting.ShardStats."""

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from .. import record as rec
from ..errors import UsageProblem

_CLIPS = pa.list_(pa.list_(pa.float64()))
_ARROW_TYPES = {rec.STRING: pa.string(), rec.INTEGER: pa.int64(), rec.NUMBER: pa.float64(), rec.LIST: _CLIPS}
# The record format's fields, typed the same in every shard (payloads excluded).
RESERVED_FIELDS = [
    pa.field(name, _ARROW_TYPES[allowed]) for name, allowed in rec.RESERVED.items() if name != rec.FILES
]
RESERVED_NAMES = frozenset(field.name for field in RESERVED_FIELDS)

# img2dataset's metadata, for --like img2dataset: its types where they are not ours, its name
# for a payload the image step could not use, and its `exif` for an image without EXIF tags.
IMG2DATASET_TYPES = {"width": pa.int32(), "height": pa.int32(), "original_width": pa.int32(),
                     "original_height": pa.int32()}
IMG2DATASET_STATUSES = {"failed_to_subsample": "failed_to_resize"}
LIKES = ("img2dataset", "video2dataset")
_IMG2DATASET_SUCCESS_ONLY = ("md5", "sha256", "sha512", "xxh64", "exif")


class Presentation:
    """What the metadata of a sample shows (.json members, tfrecord features, the metadata
    parquet): every field of the record (the default), or chosen columns in order; with
    like="img2dataset", img2dataset's status names and values too. Columns must include key
    and url: they name the sample's files and check a finished shard."""

    def __init__(self, columns: list[str] | None = None, like: str | None = None):
        if like is not None and like not in LIKES:
            raise UsageProblem(f"unknown --like {like!r} (one of {', '.join(LIKES)})")
        if columns is not None and not {"key", "url"} <= set(columns):
            raise UsageProblem("--columns must include key and url")
        self.columns = list(columns) if columns is not None else None
        self.like = like

    @property
    def everything(self) -> bool:
        return self.columns is None and self.like is None

    def show(self, record: dict) -> dict:
        if self.everything:
            return record
        if self.columns is None:  # like img2dataset, with every field
            shown = dict(record)
        else:
            shown = {name: record.get(name) for name in self.columns}
            if record.get(rec.FILES) is not None:
                shown[rec.FILES] = record[rec.FILES]
        if self.like == "img2dataset":
            status = shown.get("status")
            shown["status"] = IMG2DATASET_STATUSES.get(status, status)
            if status != "success":  # img2dataset hashes and describes the files it keeps only
                for name in _IMG2DATASET_SUCCESS_ONLY:
                    if shown.get(name) is not None:
                        shown[name] = None
            elif "exif" in shown and shown["exif"] is None and record.get("width") is not None:
                shown["exif"] = "{}"  # an image without EXIF tags
        elif self.like == "video2dataset":
            _like_video2dataset(shown, record)
        return shown

    def types(self) -> dict:
        return IMG2DATASET_TYPES if self.like == "img2dataset" else {}


def _like_video2dataset(shown: dict, record: dict) -> None:
    """video2dataset's .json fields: `yt_meta_dict` (null; {} for a video's later clips), and
    for a clip its own span `[[start, end]]` in `clips`, moved last (failed_to_subsample: [])."""
    is_clip = record.get("source_key") is not None
    first = not is_clip or str(record.get("key", "")).endswith("_00000")
    if "clips" in shown and (is_clip or shown.get("status") == "failed_to_subsample"):
        del shown["clips"]
        shown["yt_meta_dict"] = None if first else {}
        shown["clips"] = [[record.get("clip_start"), record.get("clip_end")]] if is_clip else []
    else:
        shown["yt_meta_dict"] = None


def use_system_memory_pool() -> None:
    """For a writing process: pyarrow's own allocator keeps its arenas after each shard's
    metadata table (a2d-write peaked 23 MB higher with it); malloc gives them back."""
    pa.set_memory_pool(pa.system_memory_pool())


def _arrow_type_of(value) -> pa.DataType:
    if type(value) is bool:
        return pa.bool_()
    if type(value) is int:
        return pa.int64()
    if type(value) is float:
        return pa.float64()
    return pa.string()


def _fits(value, arrow_type: pa.DataType) -> bool:
    if arrow_type == _CLIPS:
        return type(value) is list and all(
            type(clip) is list and all(type(t) in (int, float) for t in clip) for clip in value)
    if arrow_type == pa.string():
        return type(value) is str
    if arrow_type == pa.float64():
        return type(value) in (int, float)
    if arrow_type == pa.int64():
        return type(value) is int and -(1 << 63) <= value < (1 << 63)
    if arrow_type == pa.int32():
        return type(value) is int and -(1 << 31) <= value < (1 << 31)
    return _arrow_type_of(value) == arrow_type


# Python types that always fit a column of this arrow type (checked first: it is the common case).
_SURE_FIT = {pa.string(): (str,), pa.float64(): (int, float), pa.bool_(): (bool,)}


def _keep(misfits: list[dict | None], position: int, name: str, value) -> None:
    """Put a value in row `position`'s extra_json."""
    if misfits[position] is None:
        misfits[position] = {}
    misfits[position][name] = value


def _misfit_positions(values: list, arrow_type: pa.DataType) -> list[int]:
    sure = _SURE_FIT.get(arrow_type, ())
    return [i for i, value in enumerate(values)
            if value is not None and type(value) not in sure and not _fits(value, arrow_type)]


class MetadataSchema:
    """One schema for every shard a writer makes, so DuckDB and pyarrow.dataset read the
    whole folder: reserved fields typed, the input's own columns typed by the first rows
    written (a column with only nulls there is text), payload columns for the parquet
    format, and a JSON text column for whatever fits nowhere.

    The schema is frozen by the first rows it sees: a column that appears later, or a
    value of another type, goes to `extra_json` instead of changing the schema. In the
    parquet format a payload whose extension has no column goes there too, as base64
    under `files`, exactly as records carry it (a2d-read restores it).
    """

    def __init__(self, payload_columns: list[str] | None = None, with_payloads: bool = False,
                 presentation: Presentation | None = None):
        self.with_payloads = with_payloads
        self.payload_columns = list(payload_columns or [])
        # Chosen columns: exactly those, typed as the record format (or img2dataset) types them,
        # with no extra_json column; a value that does not fit a text column is kept as JSON text.
        self.columns = presentation.columns if presentation is not None else None
        self.column_types = presentation.types() if presentation is not None else {}
        self.like = presentation.like if presentation is not None else None
        self.fields: list[pa.Field] | None = None
        self.schema: pa.Schema | None = None
        self.unplaced_payloads: set[str] = set()

    def _freeze(self, rows: list[dict]) -> None:
        extra_types: dict[str, pa.DataType | None] = {}
        payloads = dict.fromkeys(self.payload_columns)
        for row in rows:
            for name, value in row.items():
                if name == rec.FILES:
                    if self.with_payloads and not self.payload_columns and value:
                        payloads.update(dict.fromkeys(value))
                elif name not in RESERVED_NAMES and name != rec.EXTRA_COLUMN and extra_types.get(name) is None:
                    extra_types[name] = None if value is None else _arrow_type_of(value)
        self.payload_columns = list(payloads) if self.with_payloads else []
        payload_fields = [pa.field(name, pa.binary()) for name in self.payload_columns]
        if self.columns is not None:
            reserved = {field.name: field.type for field in RESERVED_FIELDS}
            self.fields = [pa.field(name, self.column_types.get(name) or reserved.get(name)
                                    or extra_types.get(name) or pa.string()) for name in self.columns]
            self.schema = pa.schema(self.fields + payload_fields)
            return
        extra_fields = [pa.field(n, self.column_types.get(n) or t or pa.string())
                        for n, t in extra_types.items() if n not in payloads]
        self.fields = [pa.field(f.name, self.column_types.get(f.name, f.type)) for f in RESERVED_FIELDS] + extra_fields
        self.schema = pa.schema(self.fields + payload_fields + [pa.field(rec.EXTRA_COLUMN, pa.string())])

    def table(self, rows: list[dict]) -> pa.Table:
        if self.schema is None:
            self._freeze(rows)
        # Column by column: a shard's metadata is built at ~1 us a value, not per row and field.
        # misfits[position]: what row `position` keeps in extra_json, in the order it is found.
        misfits: list[dict | None] = [None] * len(rows)
        arrays = [self._field_array(field, rows, misfits) for field in self.fields]
        if self.columns is None:  # the chosen columns only (the parquet format's rows carry shard_size too)
            self._keep_late_columns(rows, misfits)
        files = [row.get(rec.FILES) or {} for row in rows]
        for name in self.payload_columns:
            arrays.append(pa.array([f.get(name) for f in files], type=pa.binary()))
        if self.with_payloads:
            self._keep_unplaced_payloads(files, misfits)
        if self.columns is None:
            leftovers = [orjson.dumps(m, default=rec.json_default).decode() if m else None for m in misfits]
            arrays.append(pa.array(leftovers, type=pa.string()))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _field_array(self, field: pa.Field, rows: list[dict], misfits: list[dict | None]) -> pa.Array:
        """One schema column; a value its type cannot hold goes to extra_json (or, without
        extra_json, into a text column as JSON text)."""
        name = field.name
        values = [row.get(name) for row in rows]
        for position in _misfit_positions(values, field.type):
            if self.columns is not None:  # no extra_json: text columns take the value as JSON text
                values[position] = orjson.dumps(values[position], default=rec.json_default).decode() \
                    if field.type == pa.string() else None
                continue
            _keep(misfits, position, name, values[position])
            values[position] = None
        return pa.array(values, type=field.type)

    def _keep_late_columns(self, rows: list[dict], misfits: list[dict | None]) -> None:
        """Columns first seen after the schema was set go to extra_json."""
        known = {field.name for field in self.fields} | {rec.FILES}
        for position, row in enumerate(rows):
            for name in row.keys() - known:
                if row[name] is not None:
                    _keep(misfits, position, name, row[name])

    def _keep_unplaced_payloads(self, files: list[dict], misfits: list[dict | None]) -> None:
        """Payloads with no column of their own are kept as base64, as records carry payloads;
        a2d-read restores them."""
        placed = set(self.payload_columns)
        for position, payloads in enumerate(files):
            unplaced = {ext: data for ext, data in payloads.items() if ext not in placed}
            if unplaced:
                _keep(misfits, position, rec.FILES, unplaced)
                self.unplaced_payloads.update(unplaced)

    def write(self, rows: list[dict], path: str) -> None:
        pq.write_table(self.table(rows), path, compression="zstd")
