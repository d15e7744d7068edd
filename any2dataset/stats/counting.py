"""Counting records: one set of rules behind every count any2dataset reports.

a2d-write's `{shard}_stats.json` (`ShardStats`), a2d-fetch's progress line and closing
summary, and a2d-stats' report all count with `RecordCounter`, so their numbers agree:

- a record without a status is `no_status`; img2dataset's `failed_to_resize` is
  `failed_to_subsample`;
- every `error_kind` counts;
- a failure's `error_message` counts while fewer than `message_cap` distinct messages are
  kept; later new ones only add to `untracked`;
- a record's size is its `size` field, else the length of its payloads; `bytes` is their total.

This module imports no pyarrow and no fsspec: a2d-fetch's worker processes load it.
"""

import time
from collections import Counter
from collections.abc import Iterable

import orjson

from .. import record as rec
from .histogram import SizeHistogram

STATUS_NAMES = ("success", "failed_to_download", "failed_to_subsample", "filtered", "no_status")
# Distinct error messages counted; later new ones only add to `untracked`. a2d-write keeps 100 per
# shard (STATUS_DICT_CAP, as img2dataset caps its status_dict); a report covers many shards, so it
# keeps more.
MESSAGE_CAP = 1000
STATUS_DICT_CAP = 100
_ALIASES = rec.STATUS_ALIASES
SIZES = ("histogram", "total", None)


def payload_size(record: dict) -> int | None:
    """A sample's size: its `size` field, else the total length of its payloads.

    Base64 payloads are measured from their length (3 bytes per 4 characters, less
    the padding) without decoding them.
    """
    size = record.get("size")
    if type(size) is int:
        return size
    files = record.get(rec.FILES)
    if not files:
        return None
    total = 0
    for payload in files.values():
        if type(payload) is str:
            total += len(payload) * 3 // 4 - payload.endswith("=") - payload.endswith("==")
        elif payload is not None:
            total += len(payload)
    return total


class RecordCounter:
    """Statuses, error kinds, capped error messages and payload sizes of a set of records.

    `success_message`: successes count as the message "success" too, outside the cap
    (img2dataset's status_dict). `sizes`: "histogram" keeps their distribution, "total" only
    `bytes` (a progress line shows no more, and the histogram costs a microsecond a record),
    None measures nothing (a shard's stats count the bytes written instead).
    """

    def __init__(self, *, message_cap: int = MESSAGE_CAP, success_message: bool = False,
                 sizes: str | None = "histogram"):
        if sizes not in SIZES:
            raise ValueError(f"sizes must be one of {SIZES}, not {sizes!r}")
        self.message_cap = message_cap
        self.success_message = success_message
        self.measure_sizes = sizes is not None
        self.histogram = sizes == "histogram"
        self.statuses: Counter = Counter()
        self.error_kinds: Counter = Counter()
        self.messages: Counter = Counter()
        self.untracked = 0  # error messages not counted because message_cap was reached
        self.sizes = SizeHistogram()
        self.bytes = 0

    @property
    def records(self) -> int:
        return sum(self.statuses.values())

    @property
    def successes(self) -> int:
        return self.statuses.get("success", 0)

    def add(self, record: dict) -> None:
        get = record.get  # (called per record by every stage that counts: kept lean)
        status = get("status") or "no_status"
        self.statuses[_ALIASES.get(status, status)] += 1
        kind = get("error_kind")
        if kind:
            self.error_kinds[kind] += 1
        if status == "success":
            if self.success_message:
                self.messages["success"] += 1
        else:
            message = get("error_message")
            if message:
                self.count_message(message, 1)
        if self.measure_sizes:
            size = get("size")
            if type(size) is not int:
                size = payload_size(record)
            if size is not None:
                self.bytes += size
                if self.histogram:
                    self.sizes.add(size)

    def add_size(self, size: int) -> None:
        self.sizes.add(size)
        self.bytes += size

    def count_message(self, message: str, count: int) -> None:
        if message in self.messages or len(self.messages) < self.message_cap:
            self.messages[message] += count
        else:
            self.untracked += count

    def merge(self, other: "RecordCounter") -> None:
        self.statuses.update(other.statuses)
        self.error_kinds.update(other.error_kinds)
        for message, count in other.messages.most_common():
            self.count_message(message, count)
        self.untracked += other.untracked
        self.sizes.merge(other.sizes)
        self.bytes += other.bytes

    @classmethod
    def total(cls, counters: Iterable["RecordCounter"]) -> "RecordCounter":
        result = cls()  # (a subclass' own settings)
        for counter in counters:
            result.merge(counter)
        return result

    def to_line(self) -> bytes:
        """Statuses, error kinds and bytes as one JSON line (what a progress line shows), for a
        worker process to report to its parent; messages and the size histogram stay behind."""
        return orjson.dumps([self.statuses, self.error_kinds, self.bytes]) + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> "RecordCounter":
        statuses, kinds, size = orjson.loads(line)
        counter = cls()
        counter.statuses.update(statuses)
        counter.error_kinds.update(kinds)
        counter.bytes = size
        return counter

    def report(self, top: int) -> dict:
        records = self.records
        statuses = {name: self.statuses.get(name, 0) for name in STATUS_NAMES}
        statuses.update((name, count) for name, count in self.statuses.items() if name not in statuses)
        return {
            "records": records,
            "statuses": statuses,
            "success_rate": round(statuses["success"] / records, 4) if records else None,
            "error_kinds": dict(self.error_kinds.most_common()),
            "top_errors": [[message, count] for message, count in self.messages.most_common(top)],
            "untracked_errors": self.untracked,
            "bytes": self.bytes,
            "size": self.sizes.summary(),
            "size_histogram": self.sizes.octaves(),
        }


class ShardStats:
    """A shard's `{shard}_stats.json`: the counts img2dataset users check, plus bytes and error kinds.

    like="img2dataset" adds its `failed_to_resize` (the same number as failed_to_subsample);
    like="video2dataset" adds its `bytes_downloaded` and counts the clips cut from one source
    row once, as it counts them.
    """

    def __init__(self, run_start_time: float | None = None, like: str | None = None):
        self.like = like
        self.counts = RecordCounter(message_cap=STATUS_DICT_CAP, success_message=True, sizes=None)
        self.clipped_sources: set[str] = set()
        self.bytes_downloaded = 0  # video2dataset's: the downloads of the rows that were not download failures
        self.start_time = time.time()
        # When this run of a2d-write began: in a pipe, with the stages before it, so a dataset's
        # throughput counts the downloads too, not only the moments of writing.
        self.run_start_time = self.start_time if run_start_time is None else run_start_time
        self.bytes = 0

    def add(self, record: dict, written_bytes: int, source: str | None = None,
            downloaded: int | None = None) -> None:
        """Count a row as shown; `source`: the source row's key of a clip; `downloaded`: the
        size of the row's download."""
        self.bytes += written_bytes
        if self.like == "video2dataset" and source is not None:
            if source in self.clipped_sources:
                return
            self.clipped_sources.add(source)
        if record.get("status") in ("success", "failed_to_subsample") and downloaded:
            self.bytes_downloaded += downloaded
        self.counts.add(record)

    def summary(self, shard: int, output_format: str) -> dict:
        end_time = time.time()
        statuses = self.counts.statuses
        not_transformed = statuses["failed_to_subsample"]  # failed_to_resize is counted in it
        return {
            "shard": shard,
            "format": output_format,
            "count": self.counts.records,
            "successes": statuses["success"],
            "failed_to_download": statuses["failed_to_download"],
            "failed_to_subsample": not_transformed,
            **({"failed_to_resize": not_transformed} if self.like == "img2dataset" else {}),
            "filtered": statuses["filtered"],
            "no_status": statuses["no_status"],
            "bytes": self.bytes,
            "duration": round(end_time - self.start_time, 4),
            **({"bytes_downloaded": self.bytes_downloaded} if self.like == "video2dataset" else {}),
            "start_time": self.start_time,
            "run_start_time": self.run_start_time,
            "end_time": end_time,
            "status_dict": dict(self.counts.messages.most_common()),
            "error_kinds": dict(self.counts.error_kinds.most_common()),
        }
