"""The one interface of an output format: a sink writes the files of one shard.

The shard's writer (write/__init__.py) knows sinks only through this interface: it opens
a sink with a way to name its temporary files, gives it every row of the shard in turn
(`add`), then either `finish`es it (its files are whole, to be published in the order of
`suffixes`) or `abandon`s it (the writer discards the files). A new format is one module
with one Sink class and one row in write.FORMATS.
"""

from collections.abc import Callable
from dataclasses import dataclass

import orjson

from .. import record as rec
from .metadata import MetadataSchema


@dataclass
class SinkSettings:
    """What a sink is opened with, besides the names of its files."""

    schema: MetadataSchema  # the writer's one metadata schema, shared by all its shards
    expected_size: int  # the rows the shard should get (its shard_size, else the rows per shard)
    keep_failed: bool = False  # failed and filtered rows are samples too (their .json member)


class Sink:
    """One shard of an output format. `temp_path(suffix)` names the temporary file (or folder)
    that becomes `{shard}{suffix}` when the writer publishes it."""

    suffixes: tuple[str, ...] = ()  # the shard's files, in the order they are published
    payloads_in_metadata = False  # the metadata parquet is the data (parquet format): payloads are its columns

    def __init__(self, temp_path: Callable[[str], str], settings: SinkSettings):
        self.samples = 0

    def add(self, record: dict, success: bool) -> None:
        """One row of the shard, as shown; `success`: it carries payloads. A row the format
        cannot store raises BadInput before anything of it is written."""
        raise NotImplementedError

    def finish(self, shard_size: int) -> int:
        """Complete the files of a whole shard of `shard_size` source rows; return the samples stored."""
        return self.samples

    def abandon(self) -> None:
        """Stop writing; the writer discards the files."""


class SampleSink(Sink):
    """A format of samples (`{key}.{ext}` members: tar, folder, tfrecord) with the shard's
    metadata parquet beside it: successes become samples, other rows too with keep_failed,
    and every row goes into the metadata."""

    def __init__(self, temp_path: Callable[[str], str], settings: SinkSettings):
        super().__init__(temp_path, settings)
        self.keep_failed = settings.keep_failed
        self.schema = settings.schema
        self.metadata_path = temp_path(".parquet")
        self.rows: list[dict] = []

    def add(self, record: dict, success: bool) -> None:
        if success or self.keep_failed:
            self.add_sample(record)  # may refuse the sample: then the row is not counted either
            self.samples += 1
        self.rows.append(rec.metadata(record))

    def add_sample(self, record: dict) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """The samples' file is whole (or abandoned)."""

    def finish(self, shard_size: int) -> int:
        self.close()
        for row in self.rows:
            row["shard_size"] = shard_size
        self.schema.write(self.rows, self.metadata_path)
        return self.samples

    def abandon(self) -> None:
        self.close()


def sample_members(record: dict) -> dict[str, bytes]:
    """What a sample stores besides its payloads: `txt` caption and `json` metadata.
    (No payload takes those names: record.TAKEN_NAMES.)"""
    members = dict(record.get(rec.FILES) or {})
    if record.get("caption") is not None:
        members["txt"] = record["caption"].encode("utf-8", "surrogatepass")
    members["json"] = orjson.dumps(rec.metadata(record), default=rec.json_default)
    return members


def payload_bytes(record: dict) -> int:
    return sum(len(payload) for payload in (record.get(rec.FILES) or {}).values())
