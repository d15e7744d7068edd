"""A folder of files with no URL list: each file becomes a record whose url is its path.

With inline=True the file's bytes come along as the payload (status success), so
`a2d-read --input-format raw --inline photos/ | a2d-write out/` packs a folder into
shards with no download at all.
"""

import posixpath
from collections.abc import Iterator

import fsspec

from .. import filetypes
from .. import record as rec


def extension_of(path: str) -> str:
    base = posixpath.basename(path)
    extension = base.rsplit(".", 1)[1].lower() if "." in base.strip(".") else "bin"
    if not rec.valid_extension(extension):
        extension = "bin"
    return rec.payload_name(filetypes.canonical_extension(extension))


def read_raw(path: str, inline: bool) -> Iterator[dict]:
    if not inline:
        yield {"url": path}
        return
    with fsspec.open(path, "rb").open() as stream:
        data = stream.read(rec.MAX_PAYLOAD_BYTES + 1)
    if len(data) > rec.MAX_PAYLOAD_BYTES:
        yield rec.failure({"url": path}, "failed_to_download", "too_large",
                          f"over {rec.MAX_PAYLOAD_BYTES >> 20} MiB, the most one record carries")
        return
    yield {
        "url": path,
        "status": "success",
        "mime": filetypes.mime_of_name(path),
        "size": len(data),
        rec.FILES: {extension_of(path): data},
    }
