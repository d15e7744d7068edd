"""The loader's cache of downloaded payloads: key (a str) -> bytes, least recently used
evicted to stay within a byte budget.

`Cache(folder, budget="50GB")` keeps the payloads on disk, shared by every process of a node
that opens the same folder (the DataLoader's workers) and kept across restarts
(`disk_cache.DiskStore` says how). `Cache(budget="2GB")` keeps them in this process's memory,
with the same interface and budget. A budget is a number of bytes, or text with an SI or IEC
unit: "10GB" is 10 * 1000**3 bytes, "512MiB" 512 * 1024**2.
"""

import os
import re
import threading
from collections import OrderedDict

from ..errors import UsageProblem

_UNITS = {"": 1, "b": 1}
for _power, _prefix in enumerate("kmgtpe", start=1):
    _UNITS[f"{_prefix}b"] = 1000 ** _power
    _UNITS[f"{_prefix}ib"] = 1024 ** _power
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(size: int | str) -> int:
    """Bytes from an int or text such as "10GB", "1.5 TB", "512MiB", "4096" (UsageProblem if
    not). A bare "10G" is refused: it is 10**9 to some tools and 2**30 to others."""
    if isinstance(size, int) and not isinstance(size, bool):
        if size < 0:
            raise UsageProblem(f"a size cannot be negative: {size}")
        return size
    match = _SIZE.match(size) if isinstance(size, str) else None
    unit = match and match.group(2).lower()
    if not match or unit not in _UNITS:
        raise UsageProblem(f"not a size: {size!r} (bytes, or a number with a unit: kB MB GB TB, KiB MiB GiB TiB)")
    return int(float(match.group(1)) * _UNITS[unit])


class Cache:
    """key -> bytes within a byte budget. `folder`: on disk there, shared by the node's
    processes and kept across restarts; None: in this process's memory.

    `get` returns None on a miss (never a partial or corrupt payload) and makes a hit the most
    recently used; `put` stores, evicting the least recently used entries first. An entry
    larger than the whole budget is not stored (stats' `too_large`). A Cache pickles (to a
    worker process) as the same folder and budget; a memory cache arrives empty."""

    def __init__(self, folder: str | os.PathLike | None = None, *, budget: int | str):
        self.folder = None if folder is None else os.fspath(folder)
        self.budget = parse_size(budget)
        if self.folder is None:
            self._store = MemoryStore(self.budget)
        else:
            from .disk_cache import DiskStore  # sqlite3 only when a folder is asked for

            self._store = DiskStore(self.folder, self.budget)

    def get(self, key: str) -> bytes | None:
        return self._store.get(_checked(key))

    def put(self, key: str, data: bytes) -> None:
        self._store.put(_checked(key), bytes(data))

    def __contains__(self, key: str) -> bool:
        return self._store.contains(_checked(key))

    def usage(self) -> int:
        """Bytes held (on disk: also those reserved by entries being written)."""
        return self._store.usage()

    def stats(self) -> dict[str, int]:
        """hits, misses, evictions, too_large, corrupt, skipped: this object's counts since it
        was made; bytes (as usage()) and entries: the whole cache's, all processes included."""
        return self._store.stats()

    def clear(self) -> None:
        """Remove every entry (on disk, for every process: those being written finish unstored)."""
        self._store.clear()

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> "Cache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {"folder": self.folder, "budget": self.budget}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["folder"], budget=state["budget"])

    def __repr__(self) -> str:
        return f"Cache({self.folder!r}, budget={self.budget})"


def _checked(key: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"a cache key is a str, not {type(key).__name__}")
    return key


class Counts(dict):
    """The per-object outcome counts both stores keep (`add` is safe from several threads)."""

    def __init__(self):
        super().__init__(hits=0, misses=0, evictions=0, too_large=0, corrupt=0, skipped=0)
        self.lock = threading.Lock()

    def add(self, name: str, count: int = 1) -> None:
        with self.lock:
            self[name] += count


class MemoryStore:
    """The in-memory LRU: an OrderedDict, oldest first, under a lock (the loader's threads)."""

    def __init__(self, budget: int):
        self.budget = budget
        self.entries: OrderedDict[str, bytes] = OrderedDict()
        self.total = 0
        self.counts = Counts()
        self.lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self.lock:
            data = self.entries.get(key)
            if data is None:
                self.counts.add("misses")
                return None
            self.entries.move_to_end(key)
            self.counts.add("hits")
            return data

    def put(self, key: str, data: bytes) -> None:
        with self.lock:
            self._remove(key)
            if len(data) > self.budget:
                self.counts.add("too_large")
                return
            while self.total + len(data) > self.budget:
                self._remove(next(iter(self.entries)))
                self.counts.add("evictions")
            self.entries[key] = data
            self.total += len(data)

    def _remove(self, key: str) -> None:
        data = self.entries.pop(key, None)
        if data is not None:
            self.total -= len(data)

    def contains(self, key: str) -> bool:
        return key in self.entries

    def usage(self) -> int:
        return self.total

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {**self.counts, "bytes": self.total, "entries": len(self.entries)}

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.total = 0

    def close(self) -> None:
        self.clear()
