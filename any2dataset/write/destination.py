"""Where finished shard files go: a local folder, or any fsspec URL (s3://, gs://, ...).

Files are always written locally first, under a hidden temporary name, and only
then put under their final name: a rename in the same folder for a local output,
one upload per file for a remote one (an S3 object appears whole or not at all).
A shard's `_stats.json` goes last and is removed first when a shard is redone,
so a shard is finished exactly when its stats file exists.
"""

import os
import posixpath
import shutil
import tempfile

import fsspec

from ..layout import TEMPORARY


def _remove(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    except FileNotFoundError:
        pass


def _leftovers_by_shard(names) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name in names:
        match = TEMPORARY.match(name)
        if match:
            found.setdefault(match.group(1), []).append(name)
    return found


def _sync(path: str) -> None:
    """Make a file's bytes durable before it is renamed into place: after a power loss a
    published name must not point at an empty file. A folder (the files format) is synced
    with the whole file system, one call instead of one per file."""
    if os.path.isdir(path):
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _ExistingFiles:
    """What both destinations read of the files a folder had before this run."""

    def open_existing(self, final_name: str):
        raise NotImplementedError

    def read_bytes(self, final_name: str) -> bytes | None:
        """A file that was in the folder before this run, or None."""
        stream = self.open_existing(final_name)
        if stream is None:
            return None
        with stream:
            return stream.read()


class LocalDestination(_ExistingFiles):
    remote = False

    def __init__(self, folder: str):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        # Listed once: with thousands of shards, listing the folder at every shard start was
        # most of the run (10,000 shards of 2 rows: 115 s).
        names = os.listdir(folder)
        self.existing = frozenset(names)  # what was there before this run
        self.leftovers = _leftovers_by_shard(names)

    def temp_path(self, final_name: str) -> str:
        # Hidden and pid-tagged: readers skip it, and two writers never share one.
        return os.path.join(self.folder, f".{final_name}.tmp{os.getpid()}")

    def remove_leftovers(self, shard_name: str) -> None:
        """Temporary files of this shard from a run that died (kill -9, power loss).
        Only one writer ever writes a shard, so any other temporary file of it is stale."""
        for name in self.leftovers.pop(shard_name, ()):
            _remove(os.path.join(self.folder, name))

    def open_existing(self, final_name: str):
        """A file that was in the folder before this run, open for reading, or None."""
        if final_name not in self.existing:
            return None
        try:
            return open(os.path.join(self.folder, final_name), "rb")
        except FileNotFoundError:
            return None

    def publish(self, final_name: str) -> None:
        temp, final = self.temp_path(final_name), os.path.join(self.folder, final_name)
        _sync(temp)
        if os.path.isdir(temp) and os.path.exists(final):
            # A folder cannot be renamed over a non-empty one: move the old one aside first.
            old = os.path.join(self.folder, f".{final_name}.old{os.getpid()}")
            os.replace(final, old)
            os.replace(temp, final)
            _remove(old)
        else:
            os.replace(temp, final)
        self._sync_folder()

    def _sync_folder(self) -> None:
        """The rename itself durable (it lives in the folder's entries)."""
        try:
            fd = os.open(self.folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass  # some file systems cannot sync a folder
        finally:
            os.close(fd)

    def discard(self, final_name: str) -> None:
        _remove(self.temp_path(final_name))

    def unpublish(self, final_name: str) -> None:
        _remove(os.path.join(self.folder, final_name))

    def write_bytes(self, final_name: str, data: bytes) -> None:
        with open(self.temp_path(final_name), "wb") as stream:
            stream.write(data)
        self.publish(final_name)


class RemoteDestination(_ExistingFiles):
    """Temporary files in a local scratch folder, uploaded file by file when whole."""

    remote = True

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.scratch = tempfile.mkdtemp(prefix="a2d-write-")
        try:
            listed = self.fs.ls(self.root, detail=False) if self.fs.exists(self.root) else []
        except FileNotFoundError:
            listed = []
        self.existing = frozenset(posixpath.basename(p.rstrip("/")) for p in listed)

    def open_existing(self, final_name: str):
        if final_name not in self.existing:
            return None
        try:
            return self.fs.open(posixpath.join(self.root, final_name), "rb")
        except FileNotFoundError:
            return None

    def temp_path(self, final_name: str) -> str:
        return os.path.join(self.scratch, final_name)

    def remove_leftovers(self, shard_name: str) -> None:
        pass  # an interrupted upload leaves no object behind

    def publish(self, final_name: str) -> None:
        temp, final = self.temp_path(final_name), posixpath.join(self.root, final_name)
        if os.path.isdir(temp):
            if self.fs.exists(final):
                self.fs.rm(final, recursive=True)
            names = sorted(os.listdir(temp))
            self.fs.put([os.path.join(temp, n) for n in names], [posixpath.join(final, n) for n in names])
        else:
            self.fs.put_file(temp, final)
        _remove(temp)

    def discard(self, final_name: str) -> None:
        _remove(self.temp_path(final_name))

    def unpublish(self, final_name: str) -> None:
        path = posixpath.join(self.root, final_name)
        if self.fs.exists(path):
            self.fs.rm(path)

    def write_bytes(self, final_name: str, data: bytes) -> None:
        self.fs.pipe_file(posixpath.join(self.root, final_name), data)

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def destination(folder: str):
    protocol = fsspec.core.split_protocol(folder)[0]
    if protocol in (None, "file", "local"):
        return LocalDestination(fsspec.core.url_to_fs(folder)[1] if protocol else folder)
    return RemoteDestination(folder)
