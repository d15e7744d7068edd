"""The loader's index: its sources' rows in chunks, so a huge list starts in seconds with flat memory.

Two kinds of source:

- URL lists (anything a2d-read reads as a list): a worker process reads them with a2d-read
  and spills the rows to chunk files of `chunk_rows` compact JSON lines in a folder, ahead of
  the epoch that reads them; the index is complete when `index.json` is written. Given a
  folder (`index_dir`), the processes of a node share it (the first to lock it writes, the
  others follow the chunk files as they appear, and one takes over if the writer dies) and a
  restart finds it done. Without one, a temporary folder made with the Index (so a
  DataLoader's workers share it) is removed when the process that made it exits.
- Datasets a2d-write made (webdataset tars, tfrecord, record parquet, files layout), and the
  files of a raw folder (`input_format="raw"`, each file one sample): each shard is a chunk
  as it is; nothing is copied, and the shards are read when an epoch gets there. Their row
  counts are counted (and kept in `index_dir`) only when asked for: len(), ds[i], or equal
  counts per rank.

A chunk's row of a list holds its natural position's key (`000000000123`) unless the list
has keys of its own.
"""

import atexit
import dataclasses
import fcntl
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator

import orjson
import xxhash

from .. import record as rec
from ..errors import A2DError, UsageProblem
from ..read import ReadOptions, expand_paths, read_expanded
from ..read.formats import is_record_parquet

CHUNK_ROWS = 32768
SHARD_FORMATS = ("webdataset", "tfrecord", "files")
MANIFEST = "index.json"
POLL = 0.05  # seconds between looks at a folder another process writes


class Index:
    def __init__(self, sources: list[str], options: ReadOptions, folder: str | None = None,
                 chunk_rows: int = CHUNK_ROWS):
        if chunk_rows < 1:
            raise UsageProblem("chunk_rows must be at least 1")
        self.sources, self.options, self.chunk_rows = list(sources), options, chunk_rows
        self.files = expand_paths(self.sources, options.input_format)
        kinds = {_is_shard(path, fmt) for path, fmt in self.files}
        if len(kinds) > 1:
            raise UsageProblem(f"{', '.join(self.sources)}: both URL lists and dataset shards; give each its own "
                               "Dataset (MixedDataset mixes them)")
        self.shards = kinds == {True}
        self.signature = _signature(self.sources, options, self.files, chunk_rows)
        if folder is None:  # made now, so a DataLoader's workers (forked or pickled) share it
            self.folder = tempfile.mkdtemp(prefix="a2d-index-")
            _remove_at_exit(self.folder)
        else:  # one folder per list and options: indexes of several lists can share index_dir
            self.folder = os.path.join(os.fspath(folder), self.signature)
            os.makedirs(self.folder, exist_ok=True)
        self._builder: _Builder | None = None
        self._pid = os.getpid()
        self._manifest: dict | None = None
        self._memo: tuple[int, list[bytes]] | None = None  # the last chunk read for ds[i]

    # --- what every kind answers ------------------------------------------------------

    def chunks(self) -> Iterator[int]:
        """Chunk numbers in the index's order, each as soon as it can be read (a list's while it is
        still being spilled)."""
        if self.shards:
            yield from range(len(self.files))
            return
        number = 0
        while self._wait_for_chunk(number):
            yield number
            number += 1

    def chunk_count(self) -> int:
        """Waits for a list to be spilled whole."""
        return len(self.files) if self.shards else self.manifest()["chunks"]

    def chunk_size(self, number: int) -> int:
        """Rows of a chunk (a list's chunk must be spilled; a shard is counted)."""
        if self.shards:
            return self.shard_counts()[number]
        manifest = self._complete_manifest()
        if manifest is not None and number == manifest["chunks"] - 1:
            return manifest["rows"] - number * self.chunk_rows
        return self.chunk_rows  # every chunk but the last is full

    def __len__(self) -> int:
        return sum(self.shard_counts()) if self.shards else self.manifest()["rows"]

    def complete(self) -> bool:
        """Whether a list is spilled whole (shards always are)."""
        return self.shards or self._complete_manifest() is not None

    # --- list chunks -------------------------------------------------------------------

    def rows(self, number: int) -> list[bytes]:
        """A list chunk's rows, one compact JSON object each."""
        self._wait_for_chunk(number)
        with open(self._chunk_path(number), "rb") as file:
            return file.read().splitlines()

    def row(self, position: int) -> bytes:
        """The list's row at a natural position (its chunk is read, and kept for the next call)."""
        number, offset = divmod(position, self.chunk_rows)
        if self._memo is None or self._memo[0] != number:
            if not self._wait_for_chunk(number):
                raise IndexError(position)
            self._memo = number, self.rows(number)
        rows = self._memo[1]
        if offset >= len(rows):
            raise IndexError(position)
        return rows[offset]

    def manifest(self) -> dict:
        """The spilled list's manifest: waits until the list is read whole."""
        self._start()
        while True:
            manifest = self._complete_manifest()
            if manifest is not None:
                return manifest
            self._raise_or_take_over()
            time.sleep(POLL)

    def _wait_for_chunk(self, number: int) -> bool:
        """Whether chunk `number` exists, once it does or the list is spilled whole without it."""
        self._start()
        while True:
            if os.path.exists(self._chunk_path(number)):
                return True
            manifest = self._complete_manifest()
            if manifest is not None:
                return number < manifest["chunks"]
            self._raise_or_take_over()
            time.sleep(POLL)

    def _complete_manifest(self) -> dict | None:
        if self._manifest is None:
            manifest = _load_json(os.path.join(self.folder, MANIFEST))
            if manifest is not None and manifest.get("signature") == self.signature:
                self._manifest = manifest
        return self._manifest

    def _chunk_path(self, number: int) -> str:
        return _chunk_path(self.folder, number)

    def _start(self) -> None:
        if self._pid != os.getpid():  # a forked worker: the parent's writer thread is not ours
            if self._builder is not None:
                self._builder.forget()
            self._builder, self._pid = None, os.getpid()
        if self._builder is None:
            self._builder = _Builder(self)
            self._builder.try_to_build()

    def _raise_or_take_over(self) -> None:
        """Raise what our writer met; take over when the process that was writing is gone."""
        if self._builder.error is not None:
            raise self._builder.error
        if not self._builder.building:
            self._builder.try_to_build()

    # --- shards ------------------------------------------------------------------------

    def records(self, number: int) -> Iterator[dict]:
        """A shard's records, payloads included (a file of a raw folder: its one record)."""
        path, fmt = self.files[number]
        if fmt != "raw":
            yield from read_expanded([(path, fmt)], self.options)
            return
        for record in read_expanded([(path, fmt)], dataclasses.replace(self.options, inline=True)):
            yield {"key": f"{number:012d}", **record}

    def shard_counts(self) -> list[int]:
        """Records of each shard: read once (payloads and all), kept in the index folder."""
        if self._manifest is None:
            path = os.path.join(self.folder, MANIFEST)
            manifest = _load_json(path)
            if manifest is None or manifest.get("signature") != self.signature:
                counts = [1 if fmt == "raw" else sum(1 for _ in self.records(number))
                          for number, (_, fmt) in enumerate(self.files)]
                manifest = {"signature": self.signature, "counts": counts}
                _write_atomically(path, orjson.dumps(manifest))
            self._manifest = manifest
        return self._manifest["counts"]

    def __getstate__(self) -> dict:
        """To a worker process: the folder is shared, the writer thread stays here."""
        return dict(self.__dict__, _builder=None, _memo=None)


class _Builder:
    """Spills a list into the index folder from a thread of this process, while it holds the
    folder's lock; a process that cannot take the lock reads what the holder writes."""

    def __init__(self, index: Index):
        self.index = index
        self.building = False
        self.error: BaseException | None = None
        self._lock_file = None

    def forget(self) -> None:
        """In a forked child: close our copy of the parent's lock (the parent keeps it)."""
        if self._lock_file is not None:
            self._lock_file.close()

    def try_to_build(self) -> None:
        if self.index._complete_manifest() is not None:
            return
        lock_file = open(os.path.join(self.index.folder, ".lock"), "a+b")  # noqa: SIM115 - held by the thread
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            return
        self._lock_file, self.building = lock_file, True
        threading.Thread(target=self._build, name="a2d-index", daemon=True).start()

    def _build(self) -> None:
        """Waits for the spill, done in a worker process of its own: reading and parsing a long list
        would take the GIL from the epoch's downloads in this one."""
        from ..workers import run_tasks

        index = self.index
        try:
            [outcome] = run_tasks(_spill, [(index.files, index.options, index.folder, index.signature,
                                            index.chunk_rows)], 1, name="a2d index writer")
            if isinstance(outcome, BaseException):
                raise outcome
        except BaseException as error:  # noqa: BLE001 - given to the reader, which raises it
            self.error = error
        finally:
            self.building = False
            self._lock_file.close()


def _spill(_, job: tuple) -> BaseException | int:
    """In a worker process: the list's rows into chunk files, then the manifest. Its rows, or the
    error of a bad list (raised where the loader iterates)."""
    files, options, folder, signature, chunk_rows = job
    try:
        rows, chunk, number = 0, bytearray(), 0
        for record in read_expanded(files, options):
            record.setdefault("key", f"{rows:012d}")
            # (into one buffer: each bytes orjson returns keeps ~4 KB of heap while it lives)
            chunk += orjson.dumps(record, default=rec.json_default, option=orjson.OPT_APPEND_NEWLINE)
            rows += 1
            if rows % chunk_rows == 0:
                _write_chunk(folder, number, chunk)
                chunk, number = bytearray(), number + 1
        if chunk:
            _write_chunk(folder, number, chunk)
            number += 1
    except A2DError as error:
        return error
    _write_atomically(os.path.join(folder, MANIFEST), orjson.dumps(
        {"signature": signature, "chunks": number, "rows": rows, "chunk_rows": chunk_rows}))
    return rows


def _chunk_path(folder: str, number: int) -> str:
    return os.path.join(folder, f"chunk-{number:08d}.jsonl")


def _write_chunk(folder: str, number: int, lines: bytearray) -> None:
    path = _chunk_path(folder, number)
    if not os.path.exists(path):  # (one a writer before us finished: the same rows)
        _write_atomically(path, lines)


def _is_shard(path: str, fmt: str) -> bool:
    if fmt in SHARD_FORMATS or fmt == "raw":  # (a raw folder's files are read, not downloaded)
        return True
    return fmt == "parquet" and is_record_parquet(path)


def _signature(sources: list[str], options: ReadOptions, files: list[tuple[str, str]], chunk_rows: int) -> str:
    """What the index's rows depend on: the sources and reading options, and each local file's size
    and modification time (a remote file is known by its name)."""
    parts = [orjson.dumps([sources, repr(options), chunk_rows])]
    for path, fmt in files:
        try:
            status = os.stat(path)
            parts.append(f"{path}\0{fmt}\0{status.st_size}\0{status.st_mtime_ns}".encode())
        except OSError:
            parts.append(f"{path}\0{fmt}".encode())
    return xxhash.xxh3_128_hexdigest(b"\n".join(parts))


def _load_json(path: str) -> dict | None:
    try:
        with open(path, "rb") as file:
            return orjson.loads(file.read())
    except (OSError, orjson.JSONDecodeError):
        return None


def _write_atomically(path: str, data: bytes | bytearray) -> None:
    partial = f"{path}.{os.getpid()}.{threading.get_ident()}.partial"
    with open(partial, "wb") as file:
        file.write(data)
    os.replace(partial, path)


def _remove_at_exit(folder: str) -> None:
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # not from a forked worker
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(remove)
