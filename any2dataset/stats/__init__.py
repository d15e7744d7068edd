"""a2d-stats' library: what a stream of records or a finished dataset holds, and the one
record counter every command counts with.

Two sources, one report (a plain dict; the keys both share mean the same):

- a stream (`stream`): `tally(records, stats)` passes records through unchanged while a
  `StreamStats` counts them, so a report can come from the middle of a pipeline;
- a dataset folder, local or fsspec (`dataset`): `dataset_stats(folder)` reads every shard's
  `{shard}_stats.json` and metadata parquet and says which shards are complete,
  incomplete or missing.

Memory stays flat however long the stream: sizes go into a fixed log-scale histogram
(`histogram.SizeHistogram`, so percentiles are estimates) and only the first MESSAGE_CAP
distinct error messages are counted, as a2d-write's status_dict does.

Report keys (`--json`), in both modes: mode, source, records, statuses (success,
failed_to_download, failed_to_subsample, filtered, no_status), success_rate,
error_kinds, top_errors ([[message, count], ...]), untracked_errors, bytes, size
(count, min, p50, p90, p99, max, mean), size_histogram ([[low, high, count], ...]
in powers of two), duration, records_per_second. A stream adds skipped_lines and
arrivals ({bucket_seconds, counts}); a dataset adds samples, samples_per_second,
shards ({complete, incomplete, missing}), shard_ends ([[shard, seconds, cumulative
samples], ...]) and warnings.

Modules, imported only downward: `histogram` <- `counting` (RecordCounter, and ShardStats
for a2d-write's `_stats.json`) <- `stream`, `dataset` <- `text` <- `html_page`. The data
modules never import the renderings. The names below load their module on first use, so
a2d-fetch and a2d-write, which need only `counting`, do not load pyarrow or fsspec here.
"""

import importlib

_HOMES = {
    "STATUS_NAMES": "counting", "MESSAGE_CAP": "counting", "STATUS_DICT_CAP": "counting",
    "payload_size": "counting", "RecordCounter": "counting", "ShardStats": "counting",
    "SizeHistogram": "histogram",
    "Timeline": "stream", "StreamStats": "stream", "tally": "stream", "tee_lines": "stream",
    "is_dataset": "dataset", "dataset_stats": "dataset",
    "human_bytes": "text", "human_seconds": "text", "render_text": "text",
    "render_html": "html_page",
}
__all__ = list(_HOMES)


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # found directly next time
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
