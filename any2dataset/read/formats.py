"""The table of a2d-read's input formats: name -> how a file of it is recognised and read.

A list format (txt, csv, ...) gives a Table of rows, whose columns read/__init__.py maps
onto record fields; a dataset format (a webdataset tar, ...) gives records directly. A new
format is one module and one row here.
"""

from collections.abc import Callable
from dataclasses import dataclass

from ..streams import open_input
from . import csv as csv_format
from . import dataset, raw
from . import json as json_format
from . import txt as txt_format

LIST, DATASET = "list", "dataset"
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")


@dataclass(frozen=True)
class ReadFormat:
    name: str
    kind: str  # LIST: rows whose columns become record fields; DATASET: records of an existing dataset
    suffixes: tuple[str, ...]  # file name endings that say this format (before a compression suffix)
    # LIST: (stream, TextDecoding, Bad) -> Table; DATASET: (path, ReadOptions) -> records
    load: Callable
    text: bool = False  # LIST: the stream is decoded with --encoding (else the loader reads bytes)
    typed: bool = False  # LIST: values have JSON or Arrow types (url and caption are checked as read)
    headerless: bool = False  # LIST: one bare URL a line, no column names (never a table of records)
    # LIST: a file of it (not stdin) that holds records (a `key` column) is a dataset: its records
    # (path -> records), or None when it holds a plain list
    as_dataset: Callable | None = None

    @property
    def may_be_dataset(self) -> bool:
        """Whether its records may be an existing dataset's (a2d-read checks those)."""
        return self.kind == DATASET or self.as_dataset is not None


def _arrow():
    """pyarrow is imported for the formats that need it only: a2d-read of a text list starts
    in a third of the time and memory."""
    from . import arrow

    return arrow


def is_record_parquet(path: str) -> bool:
    """Whether a parquet file holds records (a `key` column, such as a2d-write's parquet
    format, payloads in binary columns) rather than a URL list."""
    import pyarrow.parquet as pq

    with open_input(path, "rb") as stream:
        return dataset.is_record_table(pq.ParquetFile(_arrow().seekable(stream)).schema_arrow.names)


def _record_parquet(path: str):
    """A parquet of records read as a dataset; None for a parquet URL list."""
    return dataset.read_record_parquet(path) if is_record_parquet(path) else None


READ_FORMATS = {f.name: f for f in [
    ReadFormat("txt", LIST, ("txt",), txt_format.table, text=True, headerless=True),
    ReadFormat("csv", LIST, ("csv",), csv_format.table, text=True),
    ReadFormat("tsv", LIST, ("tsv",), csv_format.tsv_table, text=True),
    ReadFormat("json", LIST, ("json",), json_format.json_table, typed=True),  # decodes itself (orjson reads UTF-8)
    ReadFormat("jsonl", LIST, ("jsonl", "ndjson"), json_format.jsonl_table, text=True, typed=True),
    ReadFormat("parquet", LIST, ("parquet",), lambda stream, text, bad: _arrow().parquet_table(stream), typed=True,
               as_dataset=_record_parquet),
    ReadFormat("arrow", LIST, ("arrow", "feather", "ipc"), lambda stream, text, bad: _arrow().arrow_table(stream),
               typed=True),
    ReadFormat("webdataset", DATASET, ("tar", "tgz", "tar.gz"), lambda path, options: dataset.read_webdataset(path)),
    ReadFormat("tfrecord", DATASET, ("tfrecord",), lambda path, options: dataset.read_tfrecord(path)),
    ReadFormat("files", DATASET, (), lambda path, options: dataset.read_files_layout(path)),
    ReadFormat("raw", DATASET, (), lambda path, options: raw.read_raw(path, options.inline)),
]}
FORMATS = list(READ_FORMATS)
LIST_FORMATS = tuple(name for name, f in READ_FORMATS.items() if f.kind == LIST)
_BY_SUFFIX = {suffix: f.name for f in READ_FORMATS.values() for suffix in f.suffixes}
_COMPOUND_SUFFIXES = tuple(f".{suffix}" for suffix in _BY_SUFFIX if "." in suffix)  # (checked before compression)


def format_of_name(name: str) -> str | None:
    """The input format from a lower-case file name, ignoring a compression suffix; None if unknown."""
    for suffix in _COMPOUND_SUFFIXES:
        if name.endswith(suffix):
            return _BY_SUFFIX[suffix[1:]]
    for suffix in COMPRESSIONS:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return _BY_SUFFIX.get(name.rsplit(".", 1)[-1]) if "." in name else None
