"""The table of a2d-read's formats: one row per format, recognised by its suffixes."""

import pytest

from any2dataset.read import format_of
from any2dataset.read.formats import DATASET, FORMATS, LIST, LIST_FORMATS, READ_FORMATS


@pytest.mark.parametrize("path, fmt", [
    ("urls.txt", "txt"), ("a/b/URLS.CSV", "csv"), ("x.tsv.gz", "tsv"), ("x.ndjson.zst", "jsonl"),
    ("x.feather", "arrow"), ("00000.tar", "webdataset"), ("00000.tar.gz", "webdataset"), ("x.tgz", "webdataset"),
    ("00000.tfrecord", "tfrecord"), ("x.parquet", "parquet"), ("folder/", None), ("README", None),
    ("x.gz", None), ("x.jpg", None),
])
def test_format_of(path, fmt):
    assert format_of(path) == fmt


def test_every_format_is_one_row():
    assert FORMATS == ["txt", "csv", "tsv", "json", "jsonl", "parquet", "arrow", "webdataset", "tfrecord", "files",
                       "raw"]
    assert LIST_FORMATS == ("txt", "csv", "tsv", "json", "jsonl", "parquet", "arrow")
    assert all(f.kind in (LIST, DATASET) and callable(f.load) for f in READ_FORMATS.values())
    # Only parquet lists may hold a dataset's records; the records of those are checked.
    assert [f.name for f in READ_FORMATS.values() if f.may_be_dataset] == ["parquet", "webdataset", "tfrecord",
                                                                            "files", "raw"]
