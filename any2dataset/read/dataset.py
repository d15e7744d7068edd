"""Existing datasets as input, for re-processing: webdataset tars, the `files` layout
(one folder per shard) and tables of records (parquet or jsonl with a `key` column,
such as a2d-write's parquet format or a metadata parquet).

The layouts are img2dataset's, so its outputs (and video2dataset's) read the same way.
A shard's metadata parquet (`{shard}.parquet` beside `{shard}.tar` or `{shard}/`) is
merged back: samples get their full metadata, and failed rows, which have no
sample, come out too, so re-processing loses no row. Records keep their `key` and
`shard`; `shard_size` is the number of rows of the shard when the metadata says it.
"""

import itertools
import posixpath
import re
import tarfile
from collections.abc import Iterator

import fsspec
import orjson

from .. import record as rec
from ..errors import BadInput
from ..streams import open_input
from . import tar
from .table import unreadable


def _shard_number(path: str) -> int | None:
    stem = posixpath.basename(path.rstrip("/")).split(".", 1)[0]
    return int(stem) if stem.isdigit() else None


def unpack_row(row: dict) -> dict:
    """A metadata row back to a record: nulls dropped (parquet cannot tell them from
    absent fields) and `extra_json` spread out again."""
    extra = row.pop(rec.EXTRA_COLUMN, None)
    record = {name: value for name, value in row.items() if value is not None}
    if extra:
        record.update(orjson.loads(extra))
    return record


def _metadata_beside(path: str) -> list[dict] | None:
    """The rows of `{shard}.parquet` next to a shard's tar or folder, if there is one."""
    import pyarrow.parquet as pq  # here, not at import: reading a URL list needs no pyarrow

    base = path.rstrip("/")
    for suffix in (".tar.gz", ".tgz", ".tar", ".tfrecord"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    meta_path = base + ".parquet"
    fs, local = fsspec.core.url_to_fs(meta_path)
    if not fs.exists(local):
        return None
    try:
        with fs.open(local, "rb") as stream:
            # ParquetFile, not read_table: read_table scans through pyarrow.dataset, whose threads could abort
            # the interpreter at exit ("terminate called without an active exception").
            table = pq.ParquetFile(stream, pre_buffer=False).read(use_threads=False)
    except Exception as error:
        if not unreadable(error):
            raise
        raise BadInput(f"its metadata {meta_path} is corrupt or cut short ({type(error).__name__}: {error})") \
            from None
    return [unpack_row(row) for row in table.to_pylist()]


def source_rows(rows: list[dict]) -> int:
    """A shard's size in source rows: clips cut from one row (same source_key) count once."""
    return len({row.get("source_key") or row.get("key") for row in rows})


def _sample_record(key: str, members: dict[str, bytes], row: dict | None) -> dict:
    """One sample's members (extension -> bytes) and metadata row to a record.

    The sample's own .json member is the record exactly as it was written; the
    metadata row stands in where a sample has none.
    """
    members = dict(members)
    json_member = members.pop("json", None)
    if json_member is not None:
        try:
            record = orjson.loads(json_member)
        except orjson.JSONDecodeError:
            raise BadInput(f"sample {key}: its .json member is not valid JSON") from None
        if not isinstance(record, dict):
            raise BadInput(f"sample {key}: its .json member is not an object")
    elif row is not None:
        record = dict(row)
    else:
        record = {}
    text = members.get("txt")
    if text is not None:
        caption = record.get("caption")
        if "caption" not in record:  # no metadata: .txt is the caption, as in img2dataset
            record["caption"] = text.decode("utf-8", errors="replace")
            del members["txt"]
        elif caption is not None and text == caption.encode("utf-8"):
            del members["txt"]  # the caption's own member; otherwise .txt is a payload
    record["key"] = key
    if members:
        record[rec.FILES] = {rec.payload_name(extension, record): data for extension, data in members.items()}
        if record.get("status") is None:
            record["status"] = "success"
    return record


def _merge(path: str, samples: Iterator[tuple[str, dict[str, bytes]]], rows: list[dict] | None = None
           ) -> Iterator[dict]:
    if rows is None:
        rows = _metadata_beside(path)
    by_key = {str(row.get("key")): row for row in rows} if rows is not None else {}
    shard = _shard_number(path)
    shard_size = source_rows(rows) if rows is not None else None
    for sample_key, members in samples:
        key = _record_key(sample_key)
        record = _sample_record(key, members, by_key.pop(key, None))
        if key != sample_key:
            record[TAR_KEY] = sample_key
        yield _placed(record, shard, shard_size)
    for row in by_key.values():  # rows with no sample: failures, filtered rows
        yield _placed(row, shard, shard_size)


def _placed(record: dict, shard: int | None, shard_size: int | None) -> dict:
    if record.get("shard") is None and shard is not None:
        record["shard"] = shard
    if shard_size is not None:
        record["shard_size"] = shard_size
    elif record.get("shard_size") is None:
        record.pop("shard_size", None)
    return record


def _group(named: Iterator[tuple[str, bytes]]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Consecutive `key.ext` files to (key, {ext: bytes}), as webdataset groups tar members: the
    key is the path up to the first dot of the file name (`train/0001.seg.png`: `train/0001`)."""
    key, members = None, {}
    for name, data in named:
        while name.startswith("./"):  # (`tar -cf x.tar .`)
            name = name[2:]
        folder, base = posixpath.split(name)
        if base.startswith(".") or "." not in base:
            continue
        stem, extension = base.split(".", 1)
        sample_key = f"{folder}/{stem}" if folder else stem
        if sample_key != key:
            if members:
                yield key, members
            key, members = sample_key, {}
        if extension in members:
            raise BadInput(f"sample {key} has two .{extension} members")
        members[extension] = data
    if members:
        yield key, members


# What a key may not hold (record.py: keys name files), in a sample key from a tar's folders.
_NOT_IN_KEYS = re.compile(r"[./\\\x00-\x1f\x7f]")
TAR_KEY = "wds_key"  # a sample's own key when it is not a valid record key (members in folders)


def _record_key(sample_key: str) -> str:
    """A record key for a sample key: `train/0001` becomes `train_0001` (keys name files, so hold
    no slash or dot); the sample key is kept in the record's `wds_key`."""
    return _NOT_IN_KEYS.sub("_", sample_key)


def read_webdataset(path: str) -> Iterator[dict]:
    def members():
        with open_input(path, "rb") as stream:
            try:
                yield from tar.members(stream)
                return
            except tar.NotPlain as not_plain:
                given = not_plain.given
        # A tar the fast reader leaves to tarfile: read again, past the files it gave.
        with open_input(path, "rb") as stream:
            try:
                with tarfile.open(fileobj=stream, mode="r|*") as archive:
                    files = (member for member in archive if member.isfile())
                    for member in itertools.islice(files, given, None):
                        yield member.name, archive.extractfile(member).read()
            except tarfile.TarError as error:
                raise BadInput(f"not a readable tar file ({error})") from None

    return _merge(path, _group(members()))


def read_tfrecord(path: str) -> Iterator[dict]:
    """a2d-write's tfrecord shards: CRCs checked; with the metadata parquet beside the shard,
    bytes features that are not metadata columns are the payloads."""
    from ..tfrecord_codec import parse_example, read_frames

    rows = _metadata_beside(path)
    metadata_names = set(rec.RESERVED) | {name for row in rows or [] for name in row}

    def samples():
        with open_input(path, "rb") as stream:
            try:
                for data in read_frames(stream):
                    features = parse_example(data)
                    key = features.get("key", [b""])[0].decode("utf-8", "surrogateescape")
                    yield key, {name: values[0] for name, values in features.items()
                                if name not in metadata_names and len(values) == 1
                                and isinstance(values[0], bytes)}
            except ValueError as error:
                raise BadInput(f"not a readable TFRecord file ({error})") from None

    return _merge(path, samples(), rows)


def read_files_layout(path: str) -> Iterator[dict]:
    fs, folder = fsspec.core.url_to_fs(path)
    root = folder.rstrip("/") + "/"

    def members():
        for name in sorted(fs.find(folder)):
            with fs.open(name, "rb") as stream:
                yield name[len(root):] if name.startswith(root) else posixpath.basename(name), stream.read()

    return _merge(path, _group(members()))


def is_record_table(columns: list[str]) -> bool:
    """A table with a `key` column holds records of an existing dataset, not a URL list."""
    return "key" in columns


def read_record_parquet(path: str) -> Iterator[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .arrow import seekable

    """A parquet of records (a2d-write's parquet format, a metadata parquet): binary
    columns are payloads under their names."""
    with open_input(path, "rb") as stream:
        parquet = pq.ParquetFile(seekable(stream))
        schema = parquet.schema_arrow
        payload_columns = [f.name for f in schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
        shard = _shard_number(path)
        shard_size = parquet.metadata.num_rows
        if "source_key" in schema.names:  # clips: count their source rows
            shard_size = source_rows(parquet.read(columns=["key", "source_key"], use_threads=False).to_pylist())
        for batch in parquet.iter_batches(batch_size=4096, use_threads=False):
            for row in batch.to_pylist():
                row = unpack_row(row)
                files = {name: row.pop(name) for name in payload_columns if row.get(name) is not None}
                for name in payload_columns:
                    row.pop(name, None)
                if files:
                    row[rec.FILES] = files
                yield _placed(row, shard, shard_size)

