"""a2d-stats' library: what a stream of records or a finished dataset holds.

Two sources, one report (a plain dict; the keys both share mean the same):

- a stream: `tally(records, stats)` passes records through unchanged while a
  `StreamStats` counts them, so a report can come from the middle of a pipeline;
- a dataset folder (local or fsspec): `dataset_stats(folder)` reads every shard's
  `{shard}_stats.json` and metadata parquet and says which shards are complete,
  incomplete or missing.

Memory stays flat however long the stream: sizes go into a fixed log-scale
histogram (`SizeHistogram`, so percentiles are estimates) and only the first
MESSAGE_CAP distinct error messages are counted, as a2d-write's status_dict does.

Report keys (`--json`), in both modes: mode, source, records, statuses (success,
failed_to_download, failed_to_subsample, filtered, no_status), success_rate,
error_kinds, top_errors ([[message, count], ...]), untracked_errors, bytes, size
(count, min, p50, p90, p99, max, mean), size_histogram ([[low, high, count], ...]
in powers of two), duration, records_per_second. A stream adds skipped_lines and
arrivals ({bucket_seconds, counts}); a dataset adds samples, samples_per_second,
shards ({complete, incomplete, missing}), shard_ends ([[shard, seconds, cumulative
samples], ...]) and warnings.

In a stream, a record's size is its `size` field, else the length of its payloads;
`bytes` is their total. In a dataset, totals cover complete shards (those with a
`_stats.json`), sizes come from the metadata's `size` column and `bytes` is what the
shards' `_stats.json` say was written.
"""

import math
import os
import posixpath
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import fsspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import record as rec
from .errors import UsageProblem
from .layout import SHARD_FILE, TEMPORARY
from .streams import STDIO

STATUS_NAMES = ("success", "failed_to_download", "failed_to_subsample", "filtered", "no_status")
# Distinct error messages counted; later new ones only add to `untracked`. a2d-write keeps 100 per
# shard (STATUS_DICT_CAP); a report covers many shards, so it keeps more.
MESSAGE_CAP = 1000
# Quarter-octave bins: a percentile estimate lies in the same bin as the exact value, so it is
# off by less than 25% (sizes under 4 bytes are exact). At most 252 bins for any int64 size.
SUB_BINS = 4  # _bin's bit arithmetic assumes 4: the two bits after the leading one
PARQUET_COLUMNS = ("status", "error_kind", "error_message", "size")


# ---------------------------------------------------------------------------- sizes


def _bin(size: int) -> int:
    if size < SUB_BINS:
        return max(size, 0)
    bits = size.bit_length()
    return SUB_BINS * (bits - 2) + ((size >> (bits - 3)) & (SUB_BINS - 1))


def _bin_range(index: int) -> tuple[int, int]:
    """[low, high) of a bin."""
    if index < SUB_BINS:
        return index, index + 1
    bits, sub = index // SUB_BINS + 2, index % SUB_BINS
    return (SUB_BINS + sub) << (bits - 3), (SUB_BINS + sub + 1) << (bits - 3)


class SizeHistogram:
    """Sizes in log-scale bins: exact count, total, min, max and mean; estimated percentiles."""

    def __init__(self):
        self.bins: Counter = Counter()
        self.count = 0
        self.total = 0
        self.min: int | None = None
        self.max: int | None = None

    def add(self, size: int) -> None:
        self.bins[_bin(size)] += 1
        self.count += 1
        self.total += size
        if self.min is None or size < self.min:
            self.min = size
        if self.max is None or size > self.max:
            self.max = size

    def merge(self, other: "SizeHistogram") -> None:
        if not other.count:
            return
        self.bins.update(other.bins)
        self.count += other.count
        self.total += other.total
        self.min = other.min if self.min is None else min(self.min, other.min)
        self.max = other.max if self.max is None else max(self.max, other.max)

    def percentile(self, q: float) -> int | None:
        """The nearest-rank q-quantile (0 < q <= 1), interpolated inside its bin."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index in sorted(self.bins):
            in_bin = self.bins[index]
            if seen + in_bin >= rank:
                low, high = _bin_range(index)
                estimate = low + (high - low) * (rank - seen - 0.5) / in_bin
                return int(min(max(estimate, self.min), self.max))
            seen += in_bin
        return self.max

    def summary(self) -> dict:
        return {
            "count": self.count,
            "min": self.min,
            "p50": self.percentile(0.5),
            "p90": self.percentile(0.9),
            "p99": self.percentile(0.99),
            "max": self.max,
            "mean": round(self.total / self.count, 1) if self.count else None,
        }

    def octaves(self) -> list[list[int]]:
        """[[low, high, count], ...] in power-of-two bins ([0, 1) first), for charts."""
        merged: Counter = Counter()
        for index, count in self.bins.items():
            low = _bin_range(index)[0]
            merged[low.bit_length()] += count
        return [[0 if k == 0 else 1 << (k - 1), 1 << k, merged[k]] for k in sorted(merged)]


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


# ---------------------------------------------------------------------------- counts


class Counts:
    """Statuses, error kinds, capped error messages and sizes of a set of records."""

    def __init__(self):
        self.statuses: Counter = Counter()
        self.error_kinds: Counter = Counter()
        self.messages: Counter = Counter()
        self.untracked = 0  # error messages not counted because MESSAGE_CAP was reached
        self.sizes = SizeHistogram()

    @property
    def records(self) -> int:
        return sum(self.statuses.values())

    def add(self, record: dict) -> None:
        # The same rules as a2d-write's ShardStats, so stream and dataset reports agree.
        status = record.get("status") or "no_status"
        self.statuses[rec.STATUS_ALIASES.get(status, status)] += 1
        kind = record.get("error_kind")
        if kind:
            self.error_kinds[kind] += 1
        if status != "success":
            message = record.get("error_message")
            if message:
                self._count_message(message, 1)
        size = payload_size(record)
        if size is not None:
            self.sizes.add(size)

    def _count_message(self, message: str, count: int) -> None:
        if message in self.messages or len(self.messages) < MESSAGE_CAP:
            self.messages[message] += count
        else:
            self.untracked += count

    def merge(self, other: "Counts") -> None:
        self.statuses.update(other.statuses)
        self.error_kinds.update(other.error_kinds)
        for message, count in other.messages.most_common():
            self._count_message(message, count)
        self.untracked += other.untracked
        self.sizes.merge(other.sizes)

    def add_table(self, table: pa.Table, rows: int) -> None:
        """Count a metadata table (any of status, error_kind, error_message, size may be absent)."""
        names = set(table.column_names)
        status = table.column("status") if "status" in names else pa.nulls(rows, pa.string())
        present = 0
        for value, count in _value_counts(status):
            value = rec.STATUS_ALIASES.get(value, value)  # (img2dataset's failed_to_resize)
            self.statuses[value or "no_status"] += count
            present += count
        if rows > present:
            self.statuses["no_status"] += rows - present
        if "error_kind" in names:
            for value, count in _value_counts(table.column("error_kind")):
                if value:
                    self.error_kinds[value] += count
        if "error_message" in names:
            not_success = pc.fill_null(pc.not_equal(status, "success"), True)
            for value, count in _value_counts(table.column("error_message").filter(not_success)):
                if value:
                    self._count_message(value, count)
        if "size" in names:
            for value in table.column("size").drop_null().to_pylist():
                if type(value) in (int, float) and value >= 0:
                    self.sizes.add(int(value))

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
            "bytes": self.sizes.total,
            "size": self.sizes.summary(),
            "size_histogram": self.sizes.octaves(),
        }


def _value_counts(array) -> Iterator[tuple[object, int]]:
    """(value, count) for the non-null values of an Arrow array or chunked array."""
    if len(array) == 0:
        return
    counts = pc.value_counts(array)
    for value, count in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()):
        if value is not None:
            yield value, count


# ---------------------------------------------------------------------------- streams


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


class StreamStats(Counts):
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


# ---------------------------------------------------------------------------- inputs


def _fs(path: str):
    return fsspec.core.url_to_fs(path)


def is_dataset(inputs: list[str]) -> bool:
    """One folder argument means a dataset; anything else is a stream of JSONL files.
    Raises UsageProblem for a path that does not exist."""
    for path in inputs:
        if path == STDIO:
            continue
        if "://" not in path:
            exists = os.path.exists(path)
        else:
            fs, root = _fs(path)
            exists = fs.exists(root)
        if not exists:
            raise UsageProblem(f"{path}: no such file or folder")
    if len(inputs) != 1 or inputs[0] == STDIO:
        folders = [p for p in inputs if p != STDIO and _isdir(p)]
        if folders:
            raise UsageProblem(f"{folders[0]} is a folder: give a dataset folder alone, or JSONL files")
        return False
    return _isdir(inputs[0])


def _isdir(path: str) -> bool:
    if "://" not in path:
        return os.path.isdir(path)
    fs, root = _fs(path)
    return fs.isdir(root)


# ---------------------------------------------------------------------------- datasets

_COUNT_FIELDS = {"count": None, "successes": "success", "failed_to_download": "failed_to_download",
                 "failed_to_subsample": "failed_to_subsample", "filtered": "filtered"}


@dataclass
class _Shard:
    number: int
    name: str
    stats: bool = False
    parquet: bool = False
    other: bool = False  # data files, folders, temporaries


@dataclass
class _ShardResult:
    shard: _Shard
    counts: Counts
    stats: dict
    warnings: list[str] = field(default_factory=list)


def _inventory(fs, root: str) -> dict[int, _Shard]:
    shards: dict[int, _Shard] = {}
    for path in fs.ls(root, detail=False):
        name = posixpath.basename(path.rstrip("/"))
        match = SHARD_FILE.match(name)
        temporary = None if match else TEMPORARY.match(name)
        if not (match or temporary):
            continue
        digits = (match or temporary).group(1)
        shard = shards.setdefault(int(digits), _Shard(int(digits), digits))
        if temporary:
            shard.other = True
        elif match.group(2) == "_stats.json":
            shard.stats = True
            shard.name = digits  # the name a2d-write gave it
        elif match.group(2) == ".parquet":
            shard.parquet = True
        else:
            shard.other = True
    return shards


def _read_shard(fs, root: str, shard: _Shard) -> _ShardResult:
    """One complete shard: counts from its metadata parquet when there is one (checked
    against its _stats.json), else from the _stats.json."""
    result = _ShardResult(shard, Counts(), {})
    stats_path = posixpath.join(root, f"{shard.name}_stats.json")
    try:
        stats = orjson.loads(fs.cat_file(stats_path))
        result.stats = stats if isinstance(stats, dict) else {}
    except (OSError, orjson.JSONDecodeError) as error:
        result.warnings.append(f"shard {shard.name}: cannot read {shard.name}_stats.json ({error})")
    if shard.parquet:
        try:
            with fs.open(posixpath.join(root, f"{shard.name}.parquet"), "rb") as stream:
                parquet = pq.ParquetFile(stream)
                columns = [c for c in PARQUET_COLUMNS if c in parquet.schema_arrow.names]
                # Only the small columns: the parquet format keeps the payloads in this file too.
                table = parquet.read(columns=columns, use_threads=False)
                result.counts.add_table(table, parquet.metadata.num_rows)
            _compare(result)
            return result
        except (OSError, pa.ArrowException) as error:
            result.warnings.append(f"shard {shard.name}: cannot read {shard.name}.parquet ({error}); "
                                   f"counted from its _stats.json")
            result.counts = Counts()
    _counts_from_stats(result.counts, result.stats)
    return result


def _counts_from_stats(counts: Counts, stats: dict) -> None:
    for name, status in _COUNT_FIELDS.items():
        if status and isinstance(stats.get(name), int):
            counts.statuses[status] += stats[name]
    if isinstance(stats.get("no_status"), int) and stats["no_status"]:
        counts.statuses["no_status"] += stats["no_status"]
    for kind, count in (stats.get("error_kinds") or {}).items():
        counts.error_kinds[kind] += count
    for message, count in (stats.get("status_dict") or {}).items():
        if message != "success":
            counts._count_message(message, count)


def _compare(result: _ShardResult) -> None:
    """Warn where a shard's _stats.json disagrees with its metadata parquet."""
    stats, counts, name = result.stats, result.counts, result.shard.name
    if "bytes_downloaded" in stats:  # video2dataset's stats count source rows, the parquet a row per clip
        return
    for field_name, status in _COUNT_FIELDS.items():
        said = stats.get(field_name)
        found = counts.records if status is None else counts.statuses.get(status, 0)
        if isinstance(said, int) and said != found:
            result.warnings.append(f"shard {name}: {field_name} is {said} in {name}_stats.json "
                                   f"but {found} in {name}.parquet")
    kinds = stats.get("error_kinds")
    if isinstance(kinds, dict) and Counter(kinds) != counts.error_kinds:
        result.warnings.append(f"shard {name}: error_kinds of {name}_stats.json differ from {name}.parquet")


def _numbered(number: int, width: int) -> str:
    return f"{number:0{width}d}"


def dataset_stats(folder: str, *, top: int = 10, first_shard: int = 0, threads: int = 16) -> dict:
    """The report of a dataset folder (local or fsspec URL). Totals cover complete shards:
    an incomplete shard's files may be replaced when it is written again."""
    fs, root = _fs(folder)
    if not fs.isdir(root):
        raise UsageProblem(f"{folder}: no such folder")
    shards = _inventory(fs, root)
    if not shards:
        raise UsageProblem(f"{folder}: no shards here (no N_stats.json, N.parquet or N.tar files)")
    complete = [s for n, s in sorted(shards.items()) if s.stats]
    incomplete = [s.name for n, s in sorted(shards.items()) if not s.stats]
    width = max(len(s.name) for s in shards.values())
    missing = [_numbered(n, width) for n in range(first_shard, max(shards) + 1) if n not in shards]

    total = Counts()
    warnings: list[str] = []
    samples = 0
    byte_total = 0
    times: list[tuple[float, float, str, int]] = []  # (start, end, name, samples)
    # Threads overlap the round trips to remote storage; pyarrow itself runs single-threaded.
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for start in range(0, len(complete), 256):  # in chunks: finished results do not pile up
            for result in pool.map(lambda s: _read_shard(fs, root, s), complete[start:start + 256]):
                total.merge(result.counts)
                warnings += result.warnings
                stats = result.stats
                shard_samples = stats.get("samples")
                if type(shard_samples) is not int:
                    shard_samples = result.counts.statuses.get("success", 0)
                samples += shard_samples
                if type(stats.get("bytes")) is int:
                    byte_total += stats["bytes"]
                begun, ended = stats.get("run_start_time", stats.get("start_time")), stats.get("end_time")
                if type(begun) in (int, float) and type(ended) in (int, float):
                    times.append((begun, ended, result.shard.name, shard_samples))

    report = {"mode": "dataset", "source": folder, **total.report(top)}
    report["bytes"] = byte_total  # bytes written into the shards, as their _stats.json say
    duration = (max(t[1] for t in times) - min(t[0] for t in times)) if times else None
    report["duration"] = round(duration, 3) if duration is not None else None
    positive = duration is not None and duration > 0
    report["records_per_second"] = round(report["records"] / duration, 2) if positive else None
    report["samples"] = samples
    report["samples_per_second"] = round(samples / duration, 2) if positive else None
    report["shards"] = {"complete": len(complete), "incomplete": incomplete, "missing": missing}
    report["shard_ends"] = _shard_ends(times)
    report["warnings"] = warnings
    return report


def _shard_ends(times: list[tuple[float, float, str, int]]) -> list[list]:
    """[[shard, seconds since the first start, cumulative samples], ...] in order of finishing."""
    if not times:
        return []
    origin = min(t[0] for t in times)
    cumulative, ends = 0, []
    for _start, end, name, count in sorted(times, key=lambda t: t[1]):
        cumulative += count
        ends.append([name, round(end - origin, 3), cumulative])
    return ends


# ---------------------------------------------------------------------------- text


def human_bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} PB"  # not reached


def human_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.2f} s"
    minutes, seconds = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:>5.1f}%" if whole else ""


def _ranges(names: list[str], limit: int = 20) -> str:
    """Shard names with runs shown as first-last: 00003, 00005-00009."""
    runs: list[list[str]] = []
    for name in names:
        if runs and int(name) == int(runs[-1][-1]) + 1:
            runs[-1].append(name)
        else:
            runs.append([name])
    parts = [run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs]
    more = f" and {len(parts) - limit} more" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


def render_text(report: dict) -> str:
    """The report as an aligned plain-text table."""
    rows: list[tuple[str, str, str]] = []  # label, value (right-aligned), note
    records = report["records"]
    rows.append(("records", f"{records:,}", ""))
    for status, count in report["statuses"].items():
        if count or status != "no_status":
            rows.append((f"  {status}", f"{count:,}", _percent(count, records)))
    if report["error_kinds"]:
        rows.append(("error kinds", "", ""))
        rows += [(f"  {kind}", f"{count:,}", _percent(count, records))
                 for kind, count in report["error_kinds"].items()]
    if report["top_errors"]:
        rows.append(("top errors", "", ""))
        rows += [("", f"{count:,}", message) for message, count in report["top_errors"]]
        if report["untracked_errors"]:
            rows.append(("", f"{report['untracked_errors']:,}", "(other messages, not tracked)"))
    size = report["size"]
    rows.append(("bytes", human_bytes(report["bytes"]), f"{report['bytes']:,}"))
    if size["count"]:
        rows.append(("sizes", f"{size['count']:,}",
                     (f"min {human_bytes(size['min'])}, p50 ~{human_bytes(size['p50'])}, "
                      f"p90 ~{human_bytes(size['p90'])}, p99 ~{human_bytes(size['p99'])}, "
                      f"max {human_bytes(size['max'])}, mean {human_bytes(size['mean'])}")))
    rows.append(("duration", human_seconds(report["duration"]), ""))
    if report["records_per_second"] is not None:
        rows.append(("records/s", f"{report['records_per_second']:,.1f}", ""))
    if report["mode"] == "dataset":
        rows.append(("samples", f"{report['samples']:,}", ""))
        if report["samples_per_second"] is not None:
            rows.append(("samples/s", f"{report['samples_per_second']:,.1f}", ""))
        shards = report["shards"]
        rows.append(("shards", f"{shards['complete']:,}", "complete"))
        for state in ("incomplete", "missing"):
            if shards[state]:
                rows.append(("", f"{len(shards[state]):,}", f"{state}: {_ranges(shards[state])}"))
    elif report.get("skipped_lines"):
        rows.append(("skipped lines", f"{report['skipped_lines']:,}", ""))
    label_width = max(len(label) for label, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    lines = [f"{report['source']} ({'dataset folder' if report['mode'] == 'dataset' else 'stream of records'})"]
    lines += [f"{label:<{label_width}}  {value:>{value_width}}  {note}".rstrip() for label, value, note in rows]
    for warning in report.get("warnings") or []:
        lines.append(f"warning: {warning}")
    return "\n".join(lines) + "\n"


def render_html(report: dict) -> str:
    """The report as one self-contained HTML page (see stats_html.py)."""
    from .stats_html import render_html as render

    return render(report)


if __name__ == "__main__":  # python -m any2dataset.stats
    from .commands.stats import main

    main()
