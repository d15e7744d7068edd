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


class LocalDestination:
    remote = False

    def __init__(self, folder: str):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)

    def temp_path(self, final_name: str) -> str:
        # Hidden and pid-tagged: readers skip it, and two writers never share one.
        return os.path.join(self.folder, f".{final_name}.tmp{os.getpid()}")

    def remove_leftovers(self, shard_name: str) -> None:
        """Temporary files of this shard from a run that died (kill -9, power loss).
        Only one writer ever writes a shard, so any other temporary file of it is stale."""
        for name in os.listdir(self.folder):
            match = TEMPORARY.match(name)
            if match and match.group(1) == shard_name:
                _remove(os.path.join(self.folder, name))

    def publish(self, final_name: str) -> None:
        temp, final = self.temp_path(final_name), os.path.join(self.folder, final_name)
        if os.path.isdir(temp) and os.path.exists(final):
            # A folder cannot be renamed over a non-empty one: move the old one aside first.
            old = os.path.join(self.folder, f".{final_name}.old{os.getpid()}")
            os.replace(final, old)
            os.replace(temp, final)
            _remove(old)
        else:
            os.replace(temp, final)

    def discard(self, final_name: str) -> None:
        _remove(self.temp_path(final_name))

    def unpublish(self, final_name: str) -> None:
        _remove(os.path.join(self.folder, final_name))

    def write_bytes(self, final_name: str, data: bytes) -> None:
        with open(self.temp_path(final_name), "wb") as stream:
            stream.write(data)
        self.publish(final_name)


class RemoteDestination:
    """Temporary files in a local scratch folder, uploaded file by file when whole."""

    remote = True

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.scratch = tempfile.mkdtemp(prefix="a2d-write-")

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
