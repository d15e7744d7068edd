"""a2d-read's library: URL lists, existing datasets and folders of files, out as records.

Each list format is a small module giving a Table (its columns, and rows of the
columns asked for); this module expands paths, picks the format, maps columns
onto record fields and places errors at their input position. Existing datasets
(dataset.py) and raw folders (raw.py) give records directly.
"""

import glob as globlib
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import braceexpand
import fsspec
import orjson

from .. import record as rec
from ..errors import BadInput, UsageProblem
from ..streams import STDIO, display_name, open_input
from . import csv as csv_format
from . import dataset, raw
from . import json as json_format
from . import txt as txt_format
from .table import Table

# List formats: name -> (file mode, function(stream) -> Table)
LIST_FORMATS = {
    "txt": ("rt", txt_format.table),
    "csv": ("rt", csv_format.table),
    "tsv": ("rt", csv_format.tsv_table),
    "json": ("rb", json_format.json_table),
    "jsonl": ("rt", json_format.jsonl_table),
    "parquet": ("rb", lambda stream: _arrow().parquet_table(stream)),
    "arrow": ("rb", lambda stream: _arrow().arrow_table(stream)),
}


def _arrow():
    """pyarrow is imported for the formats that need it only: a2d-read of a text list starts
    in a third of the time and memory."""
    from . import arrow

    return arrow

# Dataset layouts and raw files, read as records rather than as lists of URLs.
DATASET_FORMATS = ("webdataset", "tfrecord", "files", "raw")
FORMATS = [*LIST_FORMATS, *DATASET_FORMATS]

_SUFFIXES = {"txt": "txt", "csv": "csv", "tsv": "tsv", "json": "json", "jsonl": "jsonl", "ndjson": "jsonl",
             "parquet": "parquet", "arrow": "arrow", "feather": "arrow", "ipc": "arrow", "tar": "webdataset",
             "tgz": "webdataset", "tfrecord": "tfrecord"}
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")


@dataclass
class ReadOptions:
    input_format: str | None = None
    url_col: str = "url"
    caption_col: str | None = None
    clip_col: str | None = None
    save_additional_columns: list[str] | None = None
    inline: bool = False


def format_of(path: str) -> str | None:
    """The input format from a file name, ignoring a compression suffix; None if unknown."""
    name = posixpath.basename(path.rstrip("/")).lower()
    if name.endswith(".tar.gz"):
        return "webdataset"
    for suffix in COMPRESSIONS:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return _SUFFIXES.get(name.rsplit(".", 1)[-1]) if "." in name else None


def infer_format(path: str) -> str:
    if path == STDIO:
        return "txt"
    fmt = format_of(path)
    if fmt is None:
        raise UsageProblem(
            f"{path}: cannot tell the input format from the name; use --input-format ({'|'.join(FORMATS)})"
        )
    return fmt


def expand_paths(patterns: Iterable[str], input_format: str | None = None) -> list[tuple[str, str]]:
    """Brace patterns, globs and folders to a list of (path, format)."""
    expanded = []
    for pattern in patterns or [STDIO]:
        for path in braceexpand.braceexpand(pattern):
            if path == STDIO:
                expanded.append((path, input_format or "txt"))
                continue
            fs, root = fsspec.core.url_to_fs(path)
            remote = "://" in path

            def name(found: str) -> str:
                return fs.unstrip_protocol(found) if remote else found

            if globlib.has_magic(root):
                matches = sorted(fs.glob(root))
                if not matches:
                    raise UsageProblem(f"{path}: no file matches")
                for match in matches:
                    if fs.isdir(match):
                        expanded.extend(_folder(fs, match, name, input_format))
                    else:
                        expanded.append((name(match), input_format or infer_format(match)))
            elif fs.isdir(root):
                expanded.extend(_folder(fs, root, name, input_format))
            elif fs.exists(root):
                expanded.append((path, input_format or infer_format(path)))
            else:
                raise UsageProblem(f"{path}: no such file")
    return expanded


def _hidden(path: str) -> bool:
    return any(part.startswith((".", "_")) for part in path.split("/") if part)


def _folder(fs, folder: str, name, input_format: str | None) -> list[tuple[str, str]]:
    """What a folder holds: a dataset's shards, raw files, or every list of a known format."""
    files = sorted(f for f in fs.find(folder) if not _hidden(f[len(folder):]))
    if input_format == "raw":
        return [(name(f), "raw") for f in files]
    if input_format in ("files", None):
        # `{shard}/` beside `{shard}.parquet`; a shard without successes has an empty folder.
        shard_dirs = sorted({f[: -len(".parquet")] for f in files
                             if f.endswith(".parquet") and posixpath.basename(f)[: -len(".parquet")].isdigit()
                             and fs.isdir(f[: -len(".parquet")])})
        # (Shard tars lie beside the parquet files; a .tar inside a shard's folder is a sample's payload.)
        top = folder.rstrip("/")
        if shard_dirs and (input_format == "files" or
                           not any(f.endswith(".tar") and posixpath.dirname(f) == top for f in files)):
            return [(name(d), "files") for d in shard_dirs]
    is_dataset = any(f.endswith("_stats.json") for f in files)
    found = []
    for f in files:
        fmt = format_of(f)
        if input_format is not None and fmt != input_format and not (input_format == "txt" and fmt is None):
            continue
        if fmt is None and input_format is None:
            continue  # not a list: a README, a checksum file, ...
        if is_dataset and f.endswith("_stats.json"):
            continue
        found.append((name(f), input_format or fmt))
    data_formats = {fmt for _, fmt in found} & {"webdataset", "tfrecord"}
    if is_dataset and data_formats:
        # A dataset folder: the tars (or tfrecords) are the data, their parquet files are merged in.
        found = [(f, fmt) for f, fmt in found if fmt in data_formats]
    if not found:
        raise UsageProblem(f"{folder}: no input file of a known format in this folder")
    return found


class ColumnMap:
    """How one list's columns become record fields."""

    def __init__(self, table: Table, source: str, fmt: str, options: ReadOptions):
        columns = table.columns
        available = ", ".join(columns) or "none"

        def require(column: str, option: str) -> str:
            if column not in columns:
                raise UsageProblem(f"{source}: no column {column!r} for {option} (columns: {available})")
            return column

        fields = {"url": columns[0] if fmt == "txt" else require(options.url_col, "--url-col")}
        if options.caption_col is not None:
            fields["caption"] = require(options.caption_col, "--caption-col")
        elif "caption" in columns:
            fields["caption"] = "caption"
        if options.clip_col is not None:
            fields["clips"] = require(options.clip_col, "--clip-col")
        used = set(fields.values())
        if options.save_additional_columns is None:
            extra = [c for c in columns if c not in used]
        else:
            extra = [require(c, "--save-additional-columns") for c in options.save_additional_columns]
        for column in extra:
            if column in rec.RESERVED:
                raise UsageProblem(
                    f"{source}: column {column!r} is a reserved record field; rename it "
                    f"or leave it out with --save-additional-columns"
                )
        self.names = [*fields, *extra]  # record field names, in order
        self.selected = [*fields.values(), *extra]  # the input columns they come from
        self.keep_unknown = options.save_additional_columns is None
        self.clips = "clips" in fields

    def records(self, rows) -> Iterator[dict]:
        names = self.names
        if not self.clips:
            # The common case, kept lean: this runs for every row of every list.
            for _line, values, unknown in rows:
                record = dict(zip(names, values))
                if unknown:
                    self._add_unknown(record, unknown, _line)
                yield record
            return
        for line, values, unknown in rows:
            record = dict(zip(names, values))
            if unknown:
                self._add_unknown(record, unknown, line)
            record["clips"] = _clips(record["clips"], line)
            yield record

    def _add_unknown(self, record: dict, unknown: dict, line) -> None:
        if not self.keep_unknown:
            return
        for column in unknown:
            if column in rec.RESERVED:
                raise BadInput(f"field {column!r} is a reserved record field", line=line)
        record.update(unknown)


def _clips(value, line):
    """A clip column: [[start, end], ...] in seconds, as a list or as JSON text (csv)."""
    if value is None or isinstance(value, list):
        return value
    try:
        clips = orjson.loads(value)
    except (orjson.JSONDecodeError, TypeError):
        raise BadInput(f"clip column is not a JSON list of [start, end] pairs: {str(value)[:80]}", line=line) \
            from None
    if not isinstance(clips, list):
        raise BadInput(f"clip column is not a list: {str(value)[:80]}", line=line)
    return clips


def _read_list(path: str, fmt: str, options: ReadOptions) -> Iterator[dict]:
    mode, open_table = LIST_FORMATS[fmt]
    text = {"encoding": "utf-8", "newline": ""} if mode == "rt" else {}
    with open_input(path, mode, **text) as stream:
        table = open_table(stream)
        if not table.columns:  # an empty file has no rows to account for
            return
        if dataset.is_record_table(table.columns) and fmt != "txt":
            # A table of records (it has keys): an existing dataset's metadata, kept whole.
            for _line, values, unknown in table.rows(table.columns):
                record = dataset.unpack_row(dict(zip(table.columns, values)))
                if unknown:
                    record.update(unknown)
                yield record
            return
        mapping = ColumnMap(table, display_name(path), fmt, options)
        yield from mapping.records(table.rows(mapping.selected))


def _records_of(path: str, fmt: str, options: ReadOptions) -> Iterator[dict]:
    if fmt == "webdataset":
        return dataset.read_webdataset(path)
    if fmt == "files":
        return dataset.read_files_layout(path)
    if fmt == "tfrecord":
        return dataset.read_tfrecord(path)
    if fmt == "raw":
        return raw.read_raw(path, options.inline)
    if fmt == "parquet" and path != STDIO:
        return _parquet(path, options)
    return _read_list(path, fmt, options)


def _parquet(path: str, options: ReadOptions) -> Iterator[dict]:
    # A parquet of records (with a `key` column) may hold payloads in binary columns.
    import pyarrow.parquet as pq

    with open_input(path, "rb") as stream:
        columns = pq.ParquetFile(_arrow().seekable(stream)).schema_arrow.names
    if dataset.is_record_table(columns):
        return dataset.read_record_parquet(path)
    return _read_list(path, "parquet", options)


def read(paths: Iterable[str] = (STDIO,), options: ReadOptions | None = None) -> Iterator[dict]:
    """Records from URL lists, datasets or folders. Every record of one list has the same fields."""
    options = options or ReadOptions()
    if options.input_format is not None and options.input_format not in FORMATS:
        raise UsageProblem(f"unknown input format {options.input_format!r} (one of {', '.join(FORMATS)})")
    for path, fmt in expand_paths(list(paths), options.input_format):
        source = display_name(path)
        try:
            if fmt in DATASET_FORMATS or fmt in ("parquet", "jsonl"):
                for record in _records_of(path, fmt, options):
                    if "key" in record:  # records of an existing dataset: check them here
                        rec.check(record)
                    yield record
            else:
                yield from _records_of(path, fmt, options)
        except BadInput as error:
            raise error.located(source, None) from None
        except UnicodeDecodeError as error:
            raise BadInput(f"not UTF-8 text ({error.reason})", source) from None
