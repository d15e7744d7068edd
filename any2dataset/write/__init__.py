"""a2d-write's library: records in, finished shards out.

A shard's files are written under hidden temporary names and renamed when whole;
`{shard}_stats.json` is renamed last, so a shard is finished exactly when its
stats file exists. Records may arrive out of order and interleaved across shards:
each shard is finished as soon as it holds `shard_size` rows. Records without a
shard are numbered in arrival order with img2dataset's key formula.
"""

import glob
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import orjson

from .. import record as rec
from ..errors import BadInput, IncompleteOutput, UsageProblem
from .metadata import MetadataSchema, ShardStats
from .webdataset import DummySink, WebdatasetSink

FORMATS = {"webdataset": WebdatasetSink, "dummy": DummySink}


@dataclass
class WriteOptions:
    output_format: str = "webdataset"
    number_sample_per_shard: int = 10000
    oom_shard_count: int = 5
    start_shard: int = 0
    max_open_shards: int = 64


class _OpenShard:
    """One shard being written: its temporary files, metadata rows and counts."""

    def __init__(self, folder: str, shard: int, name: str, sink_class, size: int | None):
        self.folder = folder
        self.shard = shard
        self.name = name
        self.size = size  # None while numbering in arrival order
        self.rows: list[dict] = []
        self.keys: set[str] = set()
        self.stats = ShardStats()
        self.data_name = f"{name}{sink_class.suffix}" if sink_class.suffix else None
        self._remove_leftovers()
        self.sink = sink_class(self._temp(self.data_name) if self.data_name else None)

    def _remove_leftovers(self) -> None:
        """Temporary files of this shard from a run that died (kill -9, power loss).
        Only one writer ever writes a shard, so any other temporary file of it is stale."""
        for leftover in glob.glob(os.path.join(glob.escape(self.folder), f".{self.name}[._]*.tmp*")):
            try:
                os.remove(leftover)
            except FileNotFoundError:
                pass

    def _temp(self, final_name: str) -> str:
        # Hidden and pid-tagged: readers skip it, and two writers never share one.
        return os.path.join(self.folder, f".{final_name}.tmp{os.getpid()}")

    def add(self, record: dict) -> None:
        key = record["key"]
        if key in self.keys:
            raise BadInput(f"duplicate key {key} in shard {self.name}")
        self.keys.add(key)
        written = 0
        if record.get(rec.FILES) and record.get("status") in (None, "success"):
            written = self.sink.add(record)
        self.stats.add(record, written)
        self.rows.append(rec.metadata(record))

    def finish(self, schema: MetadataSchema, output_format: str) -> dict:
        self.sink.close()
        for row in self.rows:
            row["shard_size"] = len(self.rows)
        if self.data_name:
            self._publish(self.data_name)
        parquet_name = f"{self.name}.parquet"
        schema.write(self.rows, self._temp(parquet_name))
        self._publish(parquet_name)
        summary = self.stats.summary(self.shard, output_format)
        summary["fingerprint"] = rec.shard_fingerprint(self.rows)
        stats_name = f"{self.name}_stats.json"
        with open(self._temp(stats_name), "wb") as stats_file:
            stats_file.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
        self._publish(stats_name)  # last: its existence marks the shard finished
        return summary

    def _publish(self, final_name: str) -> None:
        os.replace(self._temp(final_name), os.path.join(self.folder, final_name))

    def abandon(self) -> None:
        try:
            self.sink.close()
        finally:
            for final_name in (self.data_name, f"{self.name}.parquet", f"{self.name}_stats.json"):
                if final_name:
                    try:
                        os.remove(self._temp(final_name))
                    except FileNotFoundError:
                        pass


class ShardWriter:
    """Routes records to open shards and finishes each one when it is complete."""

    def __init__(self, output_folder: str, options: WriteOptions):
        if options.output_format not in FORMATS:
            raise UsageProblem(f"unknown output format {options.output_format!r} (one of {', '.join(FORMATS)})")
        if options.number_sample_per_shard < 1:
            raise UsageProblem("--number-sample-per-shard must be at least 1")
        os.makedirs(output_folder, exist_ok=True)
        self.folder = output_folder
        self.options = options
        self.sink_class = FORMATS[options.output_format]
        self.schema = MetadataSchema()
        self.open: dict[int, _OpenShard] = {}
        self.finished: set[int] = set()
        self.arrivals = 0  # records numbered in arrival order so far

    def add(self, record: dict) -> dict | None:
        """Add one record; return the stats of the shard it completed, if any."""
        shard_id = record.get("shard")
        if shard_id is None:
            shard = self._next_arrival_shard(record)
        else:
            shard = self._shard_of(record, shard_id)
        shard.add(record)
        # An arrival-order shard (size None) is complete when it is full.
        if len(shard.rows) == (shard.size or self.options.number_sample_per_shard):
            return self._finish(shard)
        return None

    def _next_arrival_shard(self, record: dict) -> _OpenShard:
        per_shard = self.options.number_sample_per_shard
        shard_id = self.options.start_shard + self.arrivals // per_shard
        index = self.arrivals % per_shard
        self.arrivals += 1
        if record.get("key") is None:
            record["key"] = rec.make_key(shard_id, index, per_shard, self.options.oom_shard_count)
        record["shard"] = shard_id
        return self.open.get(shard_id) or self._open(shard_id, None)

    def _shard_of(self, record: dict, shard_id: int) -> _OpenShard:
        size = record.get("shard_size")
        if size is None or size < 1:
            raise BadInput(f"record of shard {shard_id} has no shard_size (a2d-shard sets both)")
        if record.get("key") is None:
            raise BadInput(f"record of shard {shard_id} has no key")
        if shard_id in self.finished:
            raise BadInput(f"shard {shard_id} is already complete; record {record['key']} is one too many")
        shard = self.open.get(shard_id)
        if shard is None:
            if len(self.open) >= self.options.max_open_shards:
                raise UsageProblem(
                    f"more than {self.options.max_open_shards} shards are open at once; "
                    f"raise --max-open-shards or keep records of a shard together"
                )
            shard = self._open(shard_id, size)
        elif shard.size != size:
            raise BadInput(f"shard {shard_id} has records with shard_size {shard.size} and {size}")
        return shard

    def _open(self, shard_id: int, size: int | None) -> _OpenShard:
        name = rec.shard_name(shard_id, self.options.oom_shard_count)
        shard = _OpenShard(self.folder, shard_id, name, self.sink_class, size)
        self.open[shard_id] = shard
        return shard

    def _finish(self, shard: _OpenShard) -> dict:
        del self.open[shard.shard]
        self.finished.add(shard.shard)
        return shard.finish(self.schema, self.options.output_format)

    def end(self) -> Iterator[dict]:
        """Input is over: finish the arrival-order shard; refuse to publish short shards."""
        for shard in list(self.open.values()):
            if shard.size is None:
                yield self._finish(shard)
        if self.open:
            short = sorted(self.open.values(), key=lambda s: s.shard)
            described = ", ".join(f"{s.name} ({len(s.rows)}/{s.size} rows)" for s in short[:10])
            more = f" and {len(short) - 10} more" if len(short) > 10 else ""
            self.abandon()
            raise IncompleteOutput(
                f"input ended before {len(short)} shard(s) were complete: {described}{more}; "
                f"they were not written, run them again"
            )

    def abandon(self) -> None:
        for shard in self.open.values():
            shard.abandon()
        self.open.clear()


def write(records: Iterable[dict], output_folder: str, options: WriteOptions | None = None,
          on_bad_record: Callable[[BadInput], None] | None = None) -> Iterator[dict]:
    """Write records into shards; yield each shard's stats as it is finished.

    A record that cannot be placed (bad payload, bad shard fields) raises BadInput,
    or goes to `on_bad_record`, which may raise or count it and go on.
    """
    writer = ShardWriter(output_folder, options or WriteOptions())
    try:
        for record in records:
            try:
                rec.decode_payloads(record)
                finished = writer.add(record)
            except BadInput as error:
                if on_bad_record is None:
                    raise
                on_bad_record(error)
                continue
            if finished is not None:
                yield finished
        yield from writer.end()
    except BaseException:
        writer.abandon()  # never leave a half-written file behind, even on Ctrl-C
        raise
