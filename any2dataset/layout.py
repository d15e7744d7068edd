"""What is already in an output folder: finished shards and the highest shard number.

A shard is finished exactly when `{shard}_stats.json` exists (a2d-write renames it
into place last). Works on local folders and fsspec URLs (s3://...).
"""

import posixpath
import re
from collections.abc import Callable

import orjson

_STATS = re.compile(r"^(\d+)_stats\.json$")
# A shard's files: `N_stats.json`, `N.tar`, `N.parquet`, ..., the folder `N`.
SHARD_FILE = re.compile(r"^(\d+)(_stats\.json|\.[A-Za-z0-9][A-Za-z0-9.]*)?$")
# a2d-write's temporaries (write/destination.py): `.{final name}.tmp{pid}` (`.fix` after it while
# a parquet is rewritten) and `.{folder}.old{pid}` while a shard's folder is replaced.
TEMPORARY = re.compile(r"^\.(\d+)(?:[._][^/]*)?\.(?:tmp|old)\d+")


def _listing(folder: str) -> tuple[object, str, list[str]]:
    """(filesystem, root path, names in it)."""
    import fsspec  # (when a folder is asked about: a2d-shard without --skip-done starts without it)

    fs, root = fsspec.core.url_to_fs(folder)
    if not fs.exists(root):
        return fs, root, []
    return fs, root, [posixpath.basename(p.rstrip("/")) for p in fs.ls(root, detail=False)]


def finished_shards(folder: str, read_stats: bool = True,
                    on_unreadable: Callable[[str], None] | None = None) -> dict[int, dict]:
    """Shard number -> its stats (empty dicts when read_stats is False). A stats file that does
    not read as a JSON object (cut short by a crash) leaves its shard unfinished, and is
    reported to `on_unreadable`."""
    fs, root, names = _listing(folder)
    done = {}
    for name in names:
        match = _STATS.match(name)
        if match:
            stats = {}
            if read_stats:
                path = posixpath.join(root, name)
                with fs.open(path, "rb") as stream:
                    stats = parse_stats(stream.read(), path, on_unreadable)
                if stats is None:
                    continue
            done[int(match.group(1))] = stats
    return done


def parse_stats(data: bytes, path: str, on_unreadable: Callable[[str], None] | None) -> dict | None:
    """A shard's stats, or None (reported to `on_unreadable`) when they are not a JSON object."""
    try:
        stats = orjson.loads(data)
        if isinstance(stats, dict):
            return stats
        problem = "not a JSON object"
    except orjson.JSONDecodeError as error:
        problem = "empty" if not data.strip() else f"not JSON ({error.args[0]})"
    if on_unreadable is not None:
        on_unreadable(f"{path}: {problem}; its shard counts as unfinished and will be written again")
    return None


def last_shard(folder: str) -> int | None:
    """The highest shard number with any file in the folder (finished or not)."""
    _, _, names = _listing(folder)
    numbers = [int(m.group(1)) for m in map(SHARD_FILE.match, names) if m]
    return max(numbers) if numbers else None
