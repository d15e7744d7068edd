"""The disk store behind `Cache(folder)`: payload files under the folder and an SQLite index
of them, shared by the processes of one node.

    folder/index.sqlite            one row an entry: key, size, xxh64, last use; WAL mode
    folder/data/<ab>/<hash>-<id>   a payload: <hash> is the key's, <id> the row's (never reused)
    folder/tmp/<id>                a payload being written

How the guarantees hold:
- Budget: space is reserved before a payload is written. One write transaction (BEGIN
  IMMEDIATE, which SQLite serialises across processes) evicts the least recently used entries
  until the reservation fits, deletes their files, and inserts the new row as pending. So the
  payload files (tmp/ and data/) never add up to more than the budget, even with several
  writers: stronger than "the budget plus the one entry being written". On top come the
  index itself (a few hundred bytes an entry) and the file system's block rounding; and
  right after clear(), payloads already being written, until their writers find their row
  gone.
- Atomic entries: the payload is written to tmp/<id> and fsynced outside any lock, then one
  transaction renames it into data/ and marks the row ready with its size and checksum. Files
  only enter data/, and are only deleted, inside write transactions, so the index and the
  folder change together.
- Never a broken payload: a read checks the file's size and xxh64 against the row. A file
  another process evicted in between is a miss (its name had that row's id: a newer entry for
  the same key is another file); a mismatch is deleted, with its row, and is a miss.
- Crashes: a pending row whose writer is gone (its pid no longer runs, or it has been writing
  for STALE_AFTER seconds) is evicted like any other. Opening the folder also removes stray
  tmp/ and data/ files that no row names, and rows whose file is gone.

The folder must be local to the node (SQLite's WAL needs shared memory, not NFS).
"""

import os
import sqlite3
import threading
import time
from contextlib import contextmanager

import xxhash

from .cache import Counts

STALE_AFTER = 600.0  # seconds: a pending entry older than this lost its writer (a reused pid)
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS entries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: an id, hence a file name, is never reused
        key TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        checksum TEXT,       -- xxh64 of the payload, hex; NULL while pending (being written)
        last_use INTEGER NOT NULL,  -- a counter, unique: MAX + 1 at each use
        writer INTEGER,      -- pid of the writer while pending
        started REAL         -- when it began writing
    )""",
    "CREATE INDEX IF NOT EXISTS entries_by_use ON entries(last_use)",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta VALUES ('total', 0)",  # bytes of every row, pending ones included
)
_NEXT_USE = "(SELECT COALESCE(MAX(last_use), 0) + 1 FROM entries)"
# Connections a forked child inherited: never used nor closed there (SQLite forbids both).
_INHERITED: list[sqlite3.Connection] = []


class DiskStore:
    def __init__(self, folder: str, budget: int):
        self.folder, self.budget = folder, budget
        self.counts = Counts()
        for sub in ("data", "tmp"):
            os.makedirs(os.path.join(folder, sub), exist_ok=True)
        self._pid, self._db, self._lock, self._closed = None, None, None, False
        self._recover()

    # -- the index ---------------------------------------------------------------------------

    @contextmanager
    def _session(self):
        """This process's connection, under this object's lock (the loader's threads share it).
        A forked child opens its own connection and lock."""
        if self._closed:
            raise ValueError("the cache is closed")
        if self._pid != os.getpid():
            if self._db is not None:
                _INHERITED.append(self._db)
            self._lock = threading.RLock()
            self._db = _connect(os.path.join(self.folder, "index.sqlite"))
            self._pid = os.getpid()
        with self._lock:
            yield self._db

    @contextmanager
    def _writing(self):
        """One write transaction, serialised with every other process's."""
        with self._session() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _read(self, sql: str, args: tuple = ()) -> list:
        with self._session() as db:
            return db.execute(sql, args).fetchall()

    def _path(self, key: str, entry: int) -> str:
        digest = xxhash.xxh3_128_hexdigest(key.encode())
        return os.path.join(self.folder, "data", digest[:2], f"{digest}-{entry}")

    def _tmp(self, entry: int) -> str:
        return os.path.join(self.folder, "tmp", str(entry))

    def _drop(self, db: sqlite3.Connection, entry: int, key: str, size: int) -> None:
        """Delete an entry's files and row (inside a write transaction)."""
        for path in (self._path(key, entry), self._tmp(entry)):
            _unlink(path)
        db.execute("DELETE FROM entries WHERE id = ?", (entry,))
        db.execute("UPDATE meta SET value = value - ? WHERE name = 'total'", (size,))

    def _drop_if(self, db: sqlite3.Connection, entry: int, key: str, condition: str = "1") -> None:
        """_drop the entry if its row is still there and meets `condition` (SQL)."""
        row = db.execute(f"SELECT size FROM entries WHERE id = ? AND {condition}", (entry,)).fetchone()
        if row is not None:
            self._drop(db, entry, key, row[0])

    # -- get / put ---------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        rows = self._read("SELECT id, size, checksum FROM entries WHERE key = ? AND checksum IS NOT NULL", (key,))
        data = self._load(key, *rows[0]) if rows else None
        if data is None:
            self.counts.add("misses")
            return None
        with self._session() as db:
            db.execute(f"UPDATE entries SET last_use = {_NEXT_USE} WHERE id = ?", (rows[0][0],))
        self.counts.add("hits")
        return data

    def _load(self, key: str, entry: int, size: int, checksum: str) -> bytes | None:
        """The payload if it is whole; None if it was evicted meanwhile, gone or broken."""
        path = self._path(key, entry)
        try:
            with open(path, "rb") as file:
                data = file.read(size + 1)  # one more: a file longer than its row is broken too
        except FileNotFoundError:
            with self._writing() as db:  # evicted by another process, or deleted behind our back
                if not os.path.exists(path):
                    self._drop_if(db, entry, key)
            return None
        if len(data) == size and xxhash.xxh64_hexdigest(data) == checksum:
            return data
        self.counts.add("corrupt")
        with self._writing() as db:
            self._drop_if(db, entry, key)
        return None

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self.budget:
            self.counts.add("too_large")
            return
        entry = self._reserve(key, len(data))
        if entry is None:
            self.counts.add("skipped")
            return
        try:
            with open(self._tmp(entry), "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            stored = self._publish(key, entry, xxhash.xxh64_hexdigest(data))
        except BaseException:
            self._abandon(key, entry)
            raise
        if not stored:
            self.counts.add("skipped")

    def _reserve(self, key: str, size: int) -> int | None:
        """Room for `size` bytes (evicting the least recently used) and a pending row for the key;
        None when another live writer is storing the same key or holds the space."""
        with self._writing() as db:
            old = db.execute("SELECT id, size, checksum, writer, started FROM entries WHERE key = ?", (key,)).fetchone()
            if old is not None:
                if old[2] is None and not _stale(old[3], old[4]):
                    return None
                self._drop(db, old[0], key, old[1])  # replaced
            if not self._make_room(db, size):
                return None
            cursor = db.execute(f"INSERT INTO entries (key, size, last_use, writer, started) "
                                f"VALUES (?, ?, {_NEXT_USE}, ?, ?)", (key, size, os.getpid(), time.time()))
            db.execute("UPDATE meta SET value = value + ? WHERE name = 'total'", (size,))
            return cursor.lastrowid

    def _make_room(self, db: sqlite3.Connection, size: int) -> bool:
        """Evict, least recently used first, until `size` more bytes fit the budget (inside a
        write transaction). Pending entries of live writers stay: False if they hold the room."""
        total = _total(db)
        seen = 0  # last_use of the last row looked at: rows come in pages
        while total + size > self.budget:
            rows = db.execute("SELECT id, key, size, checksum, writer, started, last_use FROM entries "
                              "WHERE last_use > ? ORDER BY last_use LIMIT 64", (seen,)).fetchall()
            if not rows:
                return False
            for entry, key, entry_size, checksum, writer, started, last_use in rows:
                seen = last_use
                if checksum is None and not _stale(writer, started):
                    continue  # being written by a live process
                self._drop(db, entry, key, entry_size)
                self.counts.add("evictions", checksum is not None)
                total -= entry_size
                if total + size <= self.budget:
                    break
        return True

    def _publish(self, key: str, entry: int, checksum: str) -> bool:
        """Rename the written payload into data/ and mark its row ready: False if the row was
        taken from us meanwhile (by clear(), or as stale after a long stall)."""
        with self._writing() as db:
            if not db.execute("SELECT 1 FROM entries WHERE id = ? AND checksum IS NULL", (entry,)).fetchone():
                _unlink(self._tmp(entry))
                return False
            path = self._path(key, entry)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.replace(self._tmp(entry), path)
            db.execute(f"UPDATE entries SET checksum = ?, writer = NULL, started = NULL, last_use = {_NEXT_USE} "
                       "WHERE id = ?", (checksum, entry))
            return True

    def _abandon(self, key: str, entry: int) -> None:
        """Give back a reservation whose payload could not be written (disk full, Ctrl-C)."""
        try:
            with self._writing() as db:
                self._drop_if(db, entry, key)
        except (sqlite3.Error, ValueError):
            pass  # the original error matters more; the pending row goes stale and is reclaimed

    # -- the rest of the interface -----------------------------------------------------------

    def contains(self, key: str) -> bool:
        return bool(self._read("SELECT 1 FROM entries WHERE key = ? AND checksum IS NOT NULL", (key,)))

    def usage(self) -> int:
        return self._read("SELECT value FROM meta WHERE name = 'total'")[0][0]

    def stats(self) -> dict[str, int]:
        entries = self._read("SELECT COUNT(*) FROM entries WHERE checksum IS NOT NULL")[0][0]
        return {**self.counts, "bytes": self.usage(), "entries": entries}

    def clear(self) -> None:
        """Every row goes, pending ones too: their writers find their row gone and discard."""
        with self._writing() as db:
            for entry, key, size in db.execute("SELECT id, key, size FROM entries").fetchall():
                self._drop(db, entry, key, size)
        self._sweep()

    def close(self) -> None:
        if self._db is not None and self._pid == os.getpid():
            self._db.close()
        self._db, self._pid, self._closed = None, None, True

    # -- opening an existing folder ----------------------------------------------------------

    def _recover(self) -> None:
        """Reclaim what crashed writers left (stale pending rows and their files), keep the
        budget (it may be lower than last time), then sweep stray files."""
        with self._writing() as db:
            for entry, key, size, writer, started in db.execute(
                    "SELECT id, key, size, writer, started FROM entries WHERE checksum IS NULL").fetchall():
                if _stale(writer, started):
                    self._drop(db, entry, key, size)
            db.execute("UPDATE meta SET value = (SELECT COALESCE(SUM(size), 0) FROM entries) WHERE name = 'total'")
            self._make_room(db, 0)
        self._sweep()

    def _sweep(self) -> None:
        """Delete files no row names and rows whose file is gone. The folder is listed without
        the lock; each finding is checked again inside the write transaction."""
        data, tmp, strays = {}, {}, []
        for top, _, names in os.walk(os.path.join(self.folder, "data")):
            for name in names:
                _file_of(data, strays, os.path.join(top, name))
        for name in os.listdir(os.path.join(self.folder, "tmp")):
            _file_of(tmp, strays, os.path.join(self.folder, "tmp", name))
        rows = {entry: (key, ready) for entry, key, ready
                in self._read("SELECT id, key, checksum IS NOT NULL FROM entries")}
        unnamed = [(entry, path) for entry, path in data.items() if entry not in rows]
        unpending = [(entry, path) for entry, path in tmp.items() if entry not in rows or rows[entry][1]]
        lost = [entry for entry, (_, ready) in rows.items() if ready and entry not in data]
        if not (strays or unnamed or unpending or lost):
            return
        with self._writing() as db:
            for path in strays:
                _unlink(path)
            for entry, path in unnamed:
                if not db.execute("SELECT 1 FROM entries WHERE id = ?", (entry,)).fetchone():
                    _unlink(path)
            for entry, path in unpending:
                if not db.execute("SELECT 1 FROM entries WHERE id = ? AND checksum IS NULL", (entry,)).fetchone():
                    _unlink(path)
            for entry in lost:
                key = rows[entry][0]
                if not os.path.exists(self._path(key, entry)):
                    self._drop_if(db, entry, key, "checksum IS NOT NULL")


def _file_of(ours: dict[int, str], strays: list[str], path: str) -> None:
    """File a path found in data/ or tmp/ under its row id, or as a stray (a name not ours)."""
    entry = _entry_of(path)
    if entry is None:
        strays.append(path)
    else:
        ours[entry] = path


def _entry_of(path: str) -> int | None:
    """The row id in a data/ (<hash>-<id>) or tmp/ (<id>) file name."""
    name = os.path.basename(path).rpartition("-")[2]
    return int(name) if name.isdigit() else None


def _connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    for attempt in range(100):
        try:  # switching to WAL takes a lock that the busy timeout does not always wait for
            db.execute("PRAGMA journal_mode = WAL")
            break
        except sqlite3.OperationalError:
            if attempt == 99:
                raise
            time.sleep(0.05)
    db.execute("PRAGMA synchronous = NORMAL")  # WAL stays consistent; checksums catch the rest
    db.execute("BEGIN IMMEDIATE")
    for statement in _SCHEMA:
        db.execute(statement)
    db.execute("COMMIT")
    return db


def _total(db: sqlite3.Connection) -> int:
    return db.execute("SELECT value FROM meta WHERE name = 'total'").fetchone()[0]


def _stale(writer: int | None, started: float | None) -> bool:
    """Whether a pending entry's writer is gone."""
    if writer is None or started is None or time.time() - started > STALE_AFTER:
        return True
    if writer == os.getpid():
        return False
    try:
        os.kill(writer, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
