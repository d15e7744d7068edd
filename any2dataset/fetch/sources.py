"""Sources other than HTTP: `data:` URLs (RFC 2397) and anything fsspec opens
(s3://, gs://, hf://, file://, local paths), each only when its scheme is allowed."""

import binascii
from urllib.parse import unquote_to_bytes

import fsspec
import pybase64


class SourceError(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def read_data_url(url: str, max_size: int) -> tuple[bytes, str | None]:
    """(bytes, media type) of a data: URL."""
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise SourceError("invalid_url", "data: URL without a comma")
    params = header.split(";")
    mime = params[0].strip().lower() or "text/plain"
    try:
        if params[-1].strip().lower() == "base64":
            data = pybase64.b64decode(unquote_to_bytes(payload), validate=False)
        else:
            data = unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as error:
        raise SourceError("invalid_url", f"data: URL does not decode: {error}") from None
    if len(data) > max_size:
        raise SourceError("too_large", f"data: URL of {len(data)} bytes is over --max-size {max_size}")
    return data, mime


def read_fsspec(url: str, max_size: int) -> bytes:
    """The bytes behind an fsspec URL or local path; runs in a worker thread."""
    try:
        with fsspec.open(url, "rb").open() as stream:
            size = getattr(stream, "size", None)
            if isinstance(size, int) and size > max_size:
                raise SourceError("too_large", f"size {size} is over --max-size {max_size}")
            data = stream.read(max_size + 1)
    except SourceError:
        raise
    except FileNotFoundError as error:
        raise SourceError("not_found", f"not found: {error}") from None
    except PermissionError as error:
        raise SourceError("access_denied", f"access denied: {error}") from None
    except IsADirectoryError:
        raise SourceError("not_found", "is a folder, not a file") from None
    except (OSError, ValueError) as error:
        raise SourceError("other", f"{type(error).__name__}: {error}") from None
    if len(data) > max_size:
        raise SourceError("too_large", f"body is over --max-size {max_size}")
    return data
