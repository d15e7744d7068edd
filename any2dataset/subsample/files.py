"""Any file: fix the extension and mime from the bytes (any2dataset's default), and
--max-bytes to truncate or reject oversized payloads."""

from collections.abc import Callable

from .. import record as rec
from ..filetypes import sniff


def file_transform(max_bytes: int | None = None, oversize: str = "reject") -> Callable[[dict], list[dict]]:
    def transform(record: dict) -> list[dict]:
        files = record.get(rec.FILES)
        if not files or record.get("status") not in (None, "success"):
            return [record]
        for extension, data in list(files.items()):
            if max_bytes is not None and len(data) > max_bytes:
                if oversize == "reject":
                    return [rec.failure(record, "failed_to_subsample", "too_large",
                                        f"{extension} payload of {len(data)} bytes is over --max-bytes {max_bytes}")]
                data = files[extension] = data[:max_bytes]
            sniffed = sniff(data)
            if sniffed is not None and len(files) == 1:  # one payload: its bytes say what it is
                right_extension, mime = sniffed
                if right_extension != extension:
                    files[right_extension] = files.pop(extension)
                record["mime"] = mime
            if len(files) == 1:
                record["size"] = len(data)
        return [record]

    return transform
