"""webdataset tars: `{key}.{ext}` per payload, `{key}.txt` caption, `{key}.json` metadata.

Plain ustar headers (no PAX), mtime 0, uid/gid 0 and members in sorted order, so the
same records always give byte-identical tars that every tar reader accepts. Headers
come from the standard `tarfile` module: webdataset's TarWriter writes PAX headers
with a float mtime and measured ~3x slower per sample (benchmarks/README.md).
"""

import tarfile

import orjson

from .. import record as rec
from ..errors import BadInput

FIXED_MTIME = 0
_BLOCK = tarfile.BLOCKSIZE


def sample_members(record: dict) -> dict[str, bytes]:
    """What a sample stores besides its payloads: `txt` caption and `json` metadata.
    A downloaded file named .txt or .json keeps its name; its metadata is in the parquet."""
    members = dict(record.get(rec.FILES) or {})
    if record.get("caption") is not None and "txt" not in members:
        members["txt"] = record["caption"].encode("utf-8", "surrogatepass")
    if "json" not in members:
        members["json"] = orjson.dumps(rec.metadata(record), default=rec.json_default)
    return members


def payload_bytes(record: dict) -> int:
    return sum(len(payload) for payload in (record.get(rec.FILES) or {}).values())


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = FIXED_MTIME
    info.mode = 0o644
    info.uname = info.gname = ""
    try:
        return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
    except ValueError:
        raise BadInput(f"tar member name {name!r} is too long for a plain ustar header (100 bytes)") from None


class WebdatasetSink:
    suffix = ".tar"
    holds_metadata = False

    def __init__(self, temp_path: str, schema=None, expected_size=None):
        self.file = open(temp_path, "wb", buffering=1 << 20)

    def add_sample(self, record: dict) -> None:
        key = record["key"]
        members = sorted(sample_members(record).items())
        headers = [_header(f"{key}.{extension}", len(data)) for extension, data in members]  # checked first
        write = self.file.write
        for header, (_, data) in zip(headers, members):
            write(header)
            write(data)
            padding = -len(data) % _BLOCK
            if padding:
                write(b"\0" * padding)

    def close(self) -> None:
        if not self.file.closed:
            self.file.write(b"\0" * (2 * _BLOCK))  # end-of-archive marker
            self.file.close()


class DummySink:
    """Writes no data file: metadata and stats only (for benchmarks)."""

    suffix = None
    holds_metadata = False

    def __init__(self, temp_path: str | None, schema=None, expected_size=None):
        pass

    def add_sample(self, record: dict) -> None:
        pass

    def close(self) -> None:
        pass
