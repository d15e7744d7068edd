"""Sources other than HTTP: `data:` URLs (RFC 2397) and anything fsspec opens
(s3://, gs://, hf://, file://, local paths), each only when its scheme is allowed."""

import binascii
import re
from urllib.parse import unquote_to_bytes

import pybase64

# What a data: URL's base64 may hold once its ASCII whitespace is dropped (WHATWG's
# forgiving-base64: padding optional, nothing else forgiven).
_WHITESPACE = re.compile(rb"[\t\n\f\r ]+")
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*")


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
            data = _forgiving_base64(unquote_to_bytes(payload))
        else:
            data = unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as error:
        raise SourceError("invalid_url", f"data: URL does not decode: {error}") from None
    if not data:
        raise SourceError("no_content", "data: URL with no data")
    if len(data) > max_size:
        raise SourceError("too_large", f"data: URL of {len(data)} bytes is over --max-size {max_size}")
    return data, mime


def _forgiving_base64(text: bytes) -> bytes:
    """Base64 as browsers decode a data: URL: whitespace dropped, padding optional; any other
    character, or a length no base64 has, is an error (not skipped, as a lenient decoder would)."""
    text = _WHITESPACE.sub(b"", text)
    if len(text) % 4 == 0 and text.endswith(b"="):
        text = text[:-2] if text.endswith(b"==") else text[:-1]
    if not _BASE64.fullmatch(text):
        bad = text[len(_BASE64.match(text).group()):][:1]
        raise ValueError(f"{bad.decode('latin-1')!r} is not base64")
    if len(text) % 4 == 1:
        raise ValueError(f"{len(text)} base64 characters is not a whole number of bytes")
    return pybase64.b64decode(text + b"=" * (-len(text) % 4), validate=True)


def read_fsspec(url: str, max_size: int) -> bytes:
    """The bytes behind an fsspec URL or local path; runs in a worker thread."""
    try:
        import fsspec  # (only for such URLs: a2d-fetch starts without it)

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
