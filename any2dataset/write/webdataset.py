"""webdataset tars: `{key}.{ext}` per payload, `{key}.txt` caption, `{key}.json` metadata.

Plain ustar headers, fixed mtime, uid/gid 0 and sorted members, so the same
records always give byte-identical tars that every tar reader accepts.
"""

import tarfile

import orjson
from webdataset import TarWriter

from .. import record as rec

FIXED_MTIME = 0


class WebdatasetSink:
    suffix = ".tar"

    def __init__(self, temp_path: str):
        self.file = open(temp_path, "wb")
        self.tar = TarWriter(self.file, user="", group="", mode=0o644, encoder=False,
                             mtime=FIXED_MTIME, format=tarfile.USTAR_FORMAT)

    def add(self, record: dict) -> int:
        """Write a successful sample; return the payload bytes written."""
        files = record.get(rec.FILES)
        sample = {"__key__": record["key"]}
        sample.update(files)
        if record.get("caption") is not None and "txt" not in files:
            sample["txt"] = record["caption"].encode("utf-8")
        if "json" not in files:  # a downloaded .json file keeps its name; metadata is in the parquet
            sample["json"] = orjson.dumps(rec.metadata(record))
        self.tar.write(sample)
        return sum(len(payload) for payload in files.values())

    def close(self) -> None:
        self.tar.close()
        self.file.close()


class DummySink:
    """Writes no data file: metadata and stats only (for benchmarks)."""

    suffix = None

    def __init__(self, temp_path: str | None):
        pass

    def add(self, record: dict) -> int:
        return sum(len(payload) for payload in record[rec.FILES].values())

    def close(self) -> None:
        pass
