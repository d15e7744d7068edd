"""a2d-write's library: records in, finished shards out.

Formats: webdataset tars, the files layout, parquet, tfrecord, and dummy (metadata
only); every shard also gets `{shard}.parquet` with the metadata of all its rows.
A shard's files are written under hidden temporary names and put in place when
whole (destination.py: renamed locally, uploaded to s3:// and other fsspec URLs);
`{shard}_stats.json` goes last, so a shard is finished exactly when its
stats file exists. Records may arrive out of order and interleaved across shards:
each shard is finished as soon as it holds `shard_size` rows. Records without a
shard are numbered in arrival order with img2dataset's key formula.
"""

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import orjson

from .. import record as rec
from ..errors import BadInput, IncompleteOutput, UsageProblem
from ..layout import finished_shards, parse_stats
from ..stats.counting import ShardStats
from .destination import destination
from .dummy import DummySink
from .files import FilesSink
from .metadata import MetadataSchema, Presentation
from .parquet import ParquetSink
from .sink import Sink, SinkSettings, payload_bytes
from .tfrecord import TFRecordSink
from .webdataset import WebdatasetSink

# Output formats: name -> its Sink (write/sink.py), one module each.
FORMATS: dict[str, type[Sink]] = {
    "webdataset": WebdatasetSink,
    "files": FilesSink,
    "parquet": ParquetSink,
    "tfrecord": TFRecordSink,
    "dummy": DummySink,
}
INDEX_NAME = "shardindex.json"


@dataclass
class WriteOptions:
    output_format: str = "webdataset"
    number_sample_per_shard: int = rec.SAMPLES_PER_SHARD
    oom_shard_count: int = rec.SHARD_DIGITS
    start_shard: int = 0
    max_open_shards: int = 64
    keep_failed: bool = False  # also write failed and filtered rows' .json into tars, tfrecords, folders
    payload_columns: list[str] = field(default_factory=list)  # parquet format: binary columns declared up front
    index: bool = False  # write a wids shard index of the finished tars
    overwrite: bool = False  # replace finished shards even when they were written from other rows
    columns: list[str] | None = None  # the metadata's columns, in order (default: every field)
    like: str | None = None  # "img2dataset": its status names, column types and stats keys


_MISSING = object()


class OutputConflict(UsageProblem):
    """The output folder holds a finished shard of another input."""


class _OpenShard:
    """One shard being written: its sink, the key and url of its rows, and its counts."""

    def __init__(self, writer: "ShardWriter", shard: int, name: str, size: int | None):
        self.destination = writer.destination
        self.shard = shard
        self.name = name
        self.size = size  # None while numbering in arrival order
        self.urls: dict[str, str | None] = {}  # key -> url of each row: duplicates, the shard's fingerprint
        # A shard counts source rows: the clips a2d-subsample cut from one row count once,
        # and the shard waits for all `clip_count` of them.
        self.source_rows: set[str] = set()
        self.clips_awaited: dict[str, int] = {}
        self.stats = ShardStats(writer.run_start_time, writer.options.like)
        self.show = writer.presentation.show
        self.file_names = [f"{name}{suffix}" for suffix in writer.sink_class.suffixes]  # in publishing order
        self.sink: Sink | None = None  # opened by start(), once the writer knows this shard and can abandon it
        self.previous: dict | None = None  # the stats of this shard if the folder had it finished
        self.previous_urls: dict | None = None  # and its rows' key -> url, to stop at the first that differs
        self.overwrite = writer.options.overwrite

    def start(self, writer: "ShardWriter") -> None:
        self.destination.remove_leftovers(self.name)
        self.previous = writer.previous_stats(self.name)
        if self.previous is not None and not self.overwrite:
            self.previous_urls = writer.previous_urls(self.name)
        settings = SinkSettings(writer.schema, self.size or writer.options.number_sample_per_shard,
                                writer.options.keep_failed)
        self.sink = writer.sink_class(lambda suffix: self.destination.temp_path(f"{self.name}{suffix}"), settings)

    def add(self, record: dict) -> None:
        key = record["key"]
        if key in self.urls:
            raise BadInput(f"duplicate key {key} in shard {self.name}")
        if self.previous_urls is not None:
            self._check_against_previous(key, record.get("url"))
        success = bool(record.get(rec.FILES)) and record.get("status") in (None, "success")
        shown = self.show(record)  # (the record itself keeps what the bookkeeping below reads)
        self.sink.add(shown, success)
        self.urls[key] = record.get("url")
        source = record.get("source_key")
        if source is None:
            self.source_rows.add(key)
        else:
            self.source_rows.add(source)
            awaited = self.clips_awaited.get(source, record.get("clip_count") or 1) - 1
            if awaited > 0:
                self.clips_awaited[source] = awaited
            else:
                self.clips_awaited.pop(source, None)
        self.stats.add(shown, payload_bytes(record) if success else 0, source,
                       downloaded=record.get("original_size", record.get("size")))

    def complete(self, size: int) -> bool:
        return len(self.source_rows) == size and not self.clips_awaited

    def _check_against_previous(self, key: str, url: str | None) -> None:
        """Stop at the first record that the finished shard disagrees with, before anything
        of the other input is published (a check at the end would come after other shards)."""
        known = self.previous_urls.get(key, _MISSING)
        if known is _MISSING:
            same = len(self.previous_urls) < (self.size or 0)  # the finished shard may be a cut-short prefix
        else:
            same = known == rec.public_url(url or "")
        if not same:
            raise self._conflict(f"row {key} is {'not in it' if known is _MISSING else 'another URL there'}")

    def _conflict(self, detail: str) -> "OutputConflict":
        return OutputConflict(
            f"{self.destination_name(f'{self.name}_stats.json')}: shard {self.name} is finished with other rows "
            f"({detail}); it was kept. Write a different input into a new folder, or give --overwrite")

    @property
    def rows(self) -> list[dict]:
        """The key and url of each row: what a shard's fingerprint is made of."""
        return [{"key": key, "url": url} for key, url in self.urls.items()]

    def finish(self, output_format: str) -> dict:
        rows = self.rows
        if self.previous is not None and not self.overwrite and \
                rec.compare_shard(self.previous, rows) not in ("same", "prefix"):
            # Another input's shard: replacing it would leave a folder of two datasets.
            raise self._conflict(rec.shard_difference(self.previous, rows))
        count = len(self.source_rows)  # shard_size counts source rows, as a2d-shard gave it
        samples = self.sink.finish(count)
        stats_name = f"{self.name}_stats.json"
        self.destination.unpublish(stats_name)  # a shard being redone is unfinished until its new stats land
        for file_name in self.file_names:
            self.destination.publish(file_name)
        summary = self.stats.summary(self.shard, output_format)
        summary["samples"] = samples
        summary["fingerprint"] = rec.shard_fingerprint(rows)
        # Last: its existence marks the shard finished.
        self.destination.write_bytes(stats_name, orjson.dumps(summary, option=orjson.OPT_INDENT_2))
        return summary

    def destination_name(self, final_name: str) -> str:
        return f"{getattr(self.destination, 'folder', None) or self.destination.url}/{final_name}"

    def abandon(self) -> None:
        try:
            if self.sink is not None:
                self.sink.abandon()
        finally:
            for final_name in (*self.file_names, f"{self.name}_stats.json"):
                self.destination.discard(final_name)


class ShardWriter:
    """Routes records to open shards and finishes each one when it is complete."""

    def __init__(self, output_folder: str, options: WriteOptions):
        if options.output_format not in FORMATS:
            raise UsageProblem(f"unknown output format {options.output_format!r} (one of {', '.join(FORMATS)})")
        if options.number_sample_per_shard < 1:
            raise UsageProblem("--number-sample-per-shard must be at least 1")
        if options.index and options.output_format != "webdataset":
            raise UsageProblem("--index describes tar shards: it needs --format webdataset")
        for extension in options.payload_columns:
            if not rec.valid_extension(extension):
                raise UsageProblem(f"invalid payload column {extension!r}: it must be a file extension")
        self.run_start_time = time.time()
        self.folder = output_folder
        self.destination = destination(output_folder)
        self.options = options
        self.sink_class = FORMATS[options.output_format]
        self.presentation = Presentation(options.columns, options.like)
        self.schema = MetadataSchema(options.payload_columns, with_payloads=self.sink_class.payloads_in_metadata,
                                     presentation=self.presentation)
        self.open: dict[int, _OpenShard] = {}
        self.finished: set[int] = set()
        self.arrivals = 0  # records numbered in arrival order so far
        self.unreadable_stats: list[str] = []

    def previous_urls(self, name: str) -> dict | None:
        """key -> url of the rows of finished shard `name`, from its metadata parquet (None if
        it does not read: the fingerprint is still compared when the shard is finished)."""
        stream = self.destination.open_existing(f"{name}.parquet")
        if stream is None:
            return None
        try:
            import pyarrow.parquet as pq

            with stream:  # (only the two columns are read: in the parquet format it holds the payloads too)
                table = pq.ParquetFile(stream, pre_buffer=False).read(columns=["key", "url"], use_threads=False)
        except Exception:  # noqa: BLE001 - damaged or foreign: fall back to the fingerprint
            return None
        return {str(k): (u or "") for k, u in zip(table.column("key").to_pylist(), table.column("url").to_pylist())}

    def previous_stats(self, name: str) -> dict | None:
        """The stats of shard `name` if it was finished in the folder before this run."""
        stats_name = f"{name}_stats.json"
        data = self.destination.read_bytes(stats_name)
        if data is None:
            return None
        return parse_stats(data, f"{self.folder.rstrip('/')}/{stats_name}", self.unreadable_stats.append)

    def add(self, record: dict) -> dict | None:
        """Add one record; return the stats of the shard it completed, if any."""
        shard_id = record.get("shard")
        if shard_id is None:
            shard = self._next_arrival_shard(record)
        else:
            shard = self._shard_of(record, shard_id)
        shard.add(record)
        # An arrival-order shard (size None) is complete when it is full.
        if shard.complete(shard.size or self.options.number_sample_per_shard):
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
        shard = _OpenShard(self, shard_id, name, size)
        # Known before its files exist, and until they are published: a Ctrl-C at any
        # moment in between finds it in self.open and removes its temporary files.
        self.open[shard_id] = shard
        shard.start(self)
        return shard

    def _finish(self, shard: _OpenShard) -> dict:
        summary = shard.finish(self.options.output_format)
        del self.open[shard.shard]
        self.finished.add(shard.shard)
        return summary

    def end(self) -> Iterator[dict]:
        """Input is over: finish the arrival-order shard; refuse to publish short shards."""
        for shard in list(self.open.values()):
            if shard.size is None:
                yield self._finish(shard)
        if self.open:
            short = sorted(self.open.values(), key=lambda s: s.shard)
            described = ", ".join(f"{s.name} ({len(s.urls)}/{s.size} rows)" for s in short[:10])
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

    def notes(self) -> list[str]:
        """What a user should know about the output that is not an error."""
        unplaced = sorted(self.schema.unplaced_payloads)
        if not unplaced:
            return list(self.unreadable_stats)
        kept = "left out (--columns leaves no extra_json)" if self.schema.columns is not None else \
            "kept as base64 in extra_json"
        return self.unreadable_stats + [
                f"payloads with extension {', '.join(unplaced)} had no parquet column (columns are set by the "
                f"first rows written: {', '.join(self.schema.payload_columns) or 'none'}); they were {kept}. "
                f"Declare every extension with --payload-columns to give each a column."]

    def write_index(self) -> None:
        """A wids shard index of every finished tar in the folder (not only this run's)."""
        shards = finished_shards(self.folder)
        shardlist = [
            {"url": f"{rec.shard_name(number, self.options.oom_shard_count)}.tar",
             "nsamples": stats.get("samples", stats.get("successes", 0))}
            for number, stats in sorted(shards.items())
        ]
        index = {"__kind__": "wids-shard-index-v1", "wids_version": 1, "shardlist": shardlist}
        self.destination.write_bytes(INDEX_NAME, orjson.dumps(index, option=orjson.OPT_INDENT_2))

    def close(self) -> None:
        getattr(self.destination, "close", lambda: None)()


def write(records: Iterable[dict], output_folder: str, options: WriteOptions | None = None,
          on_bad_record: Callable[[BadInput], None] | None = None,
          on_note: Callable[[str], None] | None = None) -> Iterator[dict]:
    """Write records into shards; yield each shard's stats as it is finished.

    A record that cannot be placed (bad payload, bad shard fields) raises BadInput,
    or goes to `on_bad_record`, which may raise or count it and go on.
    """
    options = options or WriteOptions()
    writer = ShardWriter(output_folder, options)
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
        try:
            yield from writer.end()
        finally:
            if options.index:
                writer.write_index()  # finished shards are indexed even when some are short
            for note in writer.notes():
                (on_note or (lambda _: None))(note)
    except BaseException:
        writer.abandon()  # never leave a half-written file behind, even on Ctrl-C
        raise
    finally:
        writer.close()
