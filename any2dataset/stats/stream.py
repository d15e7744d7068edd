"""a2d-stats on a stream of records: counts plus timing, from anywhere in a pipeline.

`tally(records, stats)` passes records through unchanged while a `StreamStats` counts
them; `tee_lines` does the same for (line, record) pairs and yields the input's own bytes.
Arrivals go into a `Timeline` of fixed size, so memory stays flat however long the stream.
"""

import time
from collections.abc import Iterable, Iterator

from .counting import RecordCounter


class Timeline:
    """Arrivals per time bucket in at most BUCKETS buckets: when time runs past the last one,
    neighbouring buckets merge and the width doubles, so memory is fixed however long the stream."""

    BUCKETS = 120

    def __init__(self, width: float = 0.1):
        self.width = width
        self.counts: list[int] = []

    def add(self, seconds: float) -> None:
        index = int(seconds / self.width)
        while index >= self.BUCKETS:
            self.counts = [sum(self.counts[i:i + 2]) for i in range(0, len(self.counts), 2)]
            self.width *= 2
            index = int(seconds / self.width)
        if index >= len(self.counts):
            self.counts.extend([0] * (index + 1 - len(self.counts)))
        self.counts[index] += 1


class StreamStats(RecordCounter):
    """Counts of a stream plus its timing: wall time from creation to the end of the stream."""

    def __init__(self, source: str = "<stream>", clock=time.monotonic):
        super().__init__()
        self.source = source
        self.clock = clock
        self.started = clock()
        self.ended: float | None = None
        self.timeline = Timeline()
        self.skipped_lines = 0

    def add(self, record: dict) -> None:
        super().add(record)
        self.timeline.add(self.clock() - self.started)

    def finish(self) -> None:
        self.ended = self.clock()

    def report(self, top: int = 10) -> dict:
        duration = (self.ended if self.ended is not None else self.clock()) - self.started
        report = {"mode": "stream", "source": self.source, **super().report(top)}
        report["duration"] = round(duration, 3)
        report["records_per_second"] = round(report["records"] / duration, 2) if duration > 0 else None
        report["skipped_lines"] = self.skipped_lines
        report["arrivals"] = {"bucket_seconds": self.timeline.width, "counts": list(self.timeline.counts)}
        return report


def tally(records: Iterable[dict], stats: StreamStats) -> Iterator[dict]:
    """Pass records through unchanged, counting each in `stats`."""
    for record in records:
        stats.add(record)
        yield record
    stats.finish()


def tee_lines(pairs: Iterable[tuple[bytes, dict]], stats: StreamStats) -> Iterator[bytes]:
    """The lines of (line, record) pairs, counting each record in `stats`."""
    for line, record in pairs:
        stats.add(record)
        yield line
    stats.finish()
