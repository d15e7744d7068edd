"""a2d-stats on a finished dataset folder (local or fsspec): which shards it holds and what they count.

`dataset_stats(folder)` reads every complete shard's `{shard}_stats.json` and the small
columns of its metadata parquet, counts them with the same rules as a stream
(`RecordCounter`), warns where the two disagree, and says which shards are complete,
incomplete (files without a `_stats.json`: it is written last) or missing. `is_dataset`
tells a dataset folder argument from JSONL files.

Totals cover complete shards; sizes come from the metadata's `size` column and `bytes` is
what the shards' `_stats.json` say was written.
"""

import os
import posixpath
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import fsspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import record as rec
from ..errors import UsageProblem
from ..layout import SHARD_FILE, TEMPORARY
from ..streams import STDIO
from .counting import RecordCounter

PARQUET_COLUMNS = ("status", "error_kind", "error_message", "size")


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
    counts: RecordCounter
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
    result = _ShardResult(shard, RecordCounter(), {})
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
                count_table(result.counts, table, parquet.metadata.num_rows)
            _compare(result)
            return result
        except (OSError, pa.ArrowException) as error:
            result.warnings.append(f"shard {shard.name}: cannot read {shard.name}.parquet ({error}); "
                                   f"counted from its _stats.json")
            result.counts = RecordCounter()
    _counts_from_stats(result.counts, result.stats)
    return result


def _counts_from_stats(counts: RecordCounter, stats: dict) -> None:
    for name, status in _COUNT_FIELDS.items():
        if status and isinstance(stats.get(name), int):
            counts.statuses[status] += stats[name]
    if isinstance(stats.get("no_status"), int) and stats["no_status"]:
        counts.statuses["no_status"] += stats["no_status"]
    for kind, count in (stats.get("error_kinds") or {}).items():
        counts.error_kinds[kind] += count
    for message, count in (stats.get("status_dict") or {}).items():
        if message != "success":
            counts.count_message(message, count)


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

    total = RecordCounter()
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


def count_table(counter: RecordCounter, table: pa.Table, rows: int) -> None:
    """Count a shard's metadata table in `counter`, by the counter's rules (any of status,
    error_kind, error_message and size may be absent)."""
    names = set(table.column_names)
    status = table.column("status") if "status" in names else pa.nulls(rows, pa.string())
    present = 0
    for value, count in _value_counts(status):
        value = rec.STATUS_ALIASES.get(value, value)  # (img2dataset's failed_to_resize)
        counter.statuses[value or "no_status"] += count
        present += count
    if rows > present:
        counter.statuses["no_status"] += rows - present
    if "error_kind" in names:
        counter.error_kinds.update({value: count for value, count in _value_counts(table.column("error_kind"))
                                    if value})
    if "error_message" in names:
        not_success = pc.fill_null(pc.not_equal(status, "success"), True)
        for value, count in _value_counts(table.column("error_message").filter(not_success)):
            if value:
                counter.count_message(value, count)
    if "size" in names:
        _count_sizes(counter, table.column("size"))


def _count_sizes(counter: RecordCounter, column) -> None:
    for value in column.drop_null().to_pylist():
        if type(value) in (int, float) and value >= 0:
            counter.add_size(int(value))


def _value_counts(array) -> Iterator[tuple[object, int]]:
    """(value, count) for the non-null values of an Arrow array or chunked array."""
    if len(array) == 0:
        return
    counts = pc.value_counts(array)
    for value, count in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()):
        if value is not None:
            yield value, count
