"""The a2d record: one JSON object per line, the contract between all stages.

In memory a record is a plain dict. Payloads live under FILES as a mapping from
file extension to bytes. On the wire they are standard base64 strings; a stage
that only passes payloads through may keep them as those strings (decoding costs
time and nothing reads them), a stage that needs the bytes calls `decode_payloads`.
`dumps` accepts both forms. Fields this module does not know pass through untouched.
See man/a2d-record.5 for the documentation of every reserved field.
"""

import binascii
import math
import re
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import orjson
import pybase64
import xxhash

from .errors import BadInput

FILES = "files"
# A stage that fails after writing records ends its output with one line {ABORT: "its error"}:
# otherwise the next stage could not tell a cut-short stream from a finished one (a pipe ends
# the same way), and would finish a short last shard. Readers stop at it (streams.py).
ABORT = "a2d_abort"
# One record is one line, and orjson crashes the process (SIGSEGV) on strings near 2 GiB: a
# line, a text field or a payload's base64 stays under MAX_LINE_BYTES, so payloads under
# MAX_PAYLOAD_BYTES. Larger ones are refused as data (too_large) or bad input, never a crash.
MAX_LINE_BYTES = 1 << 30
MAX_PAYLOAD_BYTES = 768 << 20  # its base64 is 1 GiB

# Other tools' names for our statuses, taken when their datasets are read back.
STATUS_ALIASES = {"failed_to_resize": "failed_to_subsample"}  # img2dataset's
STATUSES = frozenset(
    {"success", "failed_to_download", "failed_to_subsample", "filtered"}
)

# Closed vocabulary for `error_kind`; man/a2d-record.5 explains each one.
ERROR_KINDS = frozenset(
    {
        "invalid_url",
        "scheme_denied",
        "address_denied",
        "dns",
        "connect",
        "host_down",
        "tls",
        "timeout",
        "reset",
        "truncated",
        "too_large",
        "too_many_redirects",
        "no_content",
        "invalid_reply",
        "not_found",
        "access_denied",
        "http_4xx",
        "http_5xx",
        "robots_optout",
        "hash_mismatch",
        "decode_error",
        "rejected",
        "other",
    }
)

# The types a reserved field's value may have (write/metadata.py gives each its column type).
STRING = (str,)
INTEGER = (int,)
NUMBER = (int, float)
LIST = (list,)

# Reserved fields and the JSON types they may hold (null is always allowed).
# Field names follow img2dataset's metadata so downstream code keeps working.
RESERVED = {
    "key": STRING,
    "url": STRING,
    "caption": STRING,
    "status": STRING,
    "error_message": STRING,
    "error_kind": STRING,
    "shard": INTEGER,
    "shard_size": INTEGER,
    "width": INTEGER,
    "height": INTEGER,
    "original_width": INTEGER,
    "original_height": INTEGER,
    "exif": STRING,
    "md5": STRING,
    "sha256": STRING,
    "sha512": STRING,
    "xxh64": STRING,
    "mime": STRING,
    "size": INTEGER,
    "http_status": INTEGER,
    "final_url": STRING,
    "fetch_seconds": NUMBER,
    "retries": INTEGER,
    "clips": LIST,  # [[start, end], ...] in seconds, from --clip-col (video2dataset's clip_col)
    "source_key": STRING,  # a clip's source record (a2d-subsample --clip-length, --use-clips)
    "clip_start": NUMBER,
    "clip_end": NUMBER,
    "clip_count": INTEGER,  # how many clips the source gave: a2d-write waits for all of them
    "duration": NUMBER,  # seconds of audio or video (a2d-subsample --probe)
    FILES: (dict,),
}

# Where a2d-write keeps values that fit no metadata column (parquet), as JSON text so nothing is
# dropped, and a2d-read finds them.
EXTRA_COLUMN = "extra_json"
# Names a sample's own metadata takes in the output formats: its .json and .txt (caption)
# members, and the reserved fields and extra_json (parquet columns, tfrecord features). A
# payload named so would overwrite the metadata or give a parquet file two columns of one
# name, so payloads never take them: a downloaded text file is `payload.txt`.
TAKEN_NAMES = frozenset({"json", "txt", EXTRA_COLUMN, *RESERVED})

# Extensions name tar members `{key}.{ext}`: letters and digits first (webdataset skips `_`).
_EXTENSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9][A-Za-z0-9_-]*)*$")
_KEY = re.compile(r"^[^./\\\x00-\x1f\x7f]+$")
MAX_KEY_LENGTH = 200  # bytes: a key names files ({key}.{ext}, and a temporary name), and names have 255
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", dict: "an object", list: "an array"}


def parse(line: bytes) -> dict:
    """One input line to a record, checking the reserved fields. Raises BadInput."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise BadInput(f"not valid JSON ({error.args[0]})") from None
    if type(record) is not dict:
        raise BadInput(f"expected a JSON object, got {_json_type(record)}")
    check(record)
    return record


def check(record: dict) -> None:
    """Raise BadInput if a reserved field has the wrong type or an unknown value."""
    _check_types(record)
    status = record.get("status")
    if status is not None and status not in STATUSES:
        raise BadInput(f"unknown status {status!r} (one of {', '.join(sorted(STATUSES))})")
    kind = record.get("error_kind")
    if kind is not None and kind not in ERROR_KINDS:
        raise BadInput(f"unknown error_kind {kind!r}")
    key = record.get("key")
    if key is not None:
        _check_key(key)
    for name in ("shard", "shard_size"):
        if record.get(name) is not None and record[name] < 0:
            raise BadInput(f"field {name} must not be negative")
    files = record.get(FILES)
    if files:
        _check_files(files)


def _check_types(record: dict) -> None:
    for name, allowed in RESERVED.items():
        value = record.get(name)
        if value is None:
            continue
        # bool is a subclass of int in Python; JSON true is never an integer here.
        if type(value) not in allowed:
            raise BadInput(
                f"field {name} must be {_TYPE_NAMES[allowed[-1]]}, got {_json_type(value)}"
            )


def _check_key(key: str) -> None:
    """A key names files: not empty, no dots or slashes, not over MAX_KEY_LENGTH bytes."""
    if not _KEY.match(key):
        raise BadInput(f"invalid key {key!r}: keys may not be empty or contain dots or slashes")
    if len(key) > MAX_KEY_LENGTH // 4 and len(key.encode()) > MAX_KEY_LENGTH:
        raise BadInput(f"key of {len(key.encode())} bytes is too long (at most {MAX_KEY_LENGTH}: keys name "
                       f"files, whose names have 255 bytes at most): {key[:40]}...")


def _check_files(files: dict) -> None:
    """Payload names that are file extensions not taken by the metadata; payloads as base64 or bytes."""
    for extension, payload in files.items():
        if not _EXTENSION.match(extension):
            raise BadInput(f"invalid file extension {extension!r} in {FILES}")
        if extension in TAKEN_NAMES:
            raise BadInput(f"payload name {extension!r} in {FILES} is taken by the sample's metadata; "
                           f"name it {payload_name(extension)!r}")
        if type(payload) not in (str, bytes):
            raise BadInput(f"{FILES}.{extension} must be a base64 string, got {_json_type(payload)}")


def valid_extension(extension: str) -> bool:
    return bool(_EXTENSION.match(extension))


def payload_name(extension: str, record: dict | None = None) -> str:
    """The name a payload of this extension takes: the extension, unless the sample's
    metadata takes it (TAKEN_NAMES, or a field of `record`, such as a list's own column),
    then `payload.EXT` (webdataset decodes by the last part)."""
    if extension in TAKEN_NAMES or (record is not None and extension in record):
        return f"payload.{extension}"
    return extension


def decode_payloads(record: dict) -> dict:
    """Turn the record's base64 payloads into bytes, in place. Raises BadInput."""
    files = record.get(FILES)
    if files:
        for extension, payload in files.items():
            if type(payload) is str:
                try:
                    files[extension] = pybase64.b64decode(payload, validate=True)
                except (binascii.Error, ValueError):
                    raise BadInput(f"invalid base64 in {FILES}.{extension}") from None
    return record


def json_default(value):
    """What orjson cannot write itself (it writes dates and times as ISO 8601): bytes (payloads,
    binary columns), decimals as text, durations as seconds, anything else a list may hold
    (a parquet interval, an extension type) as its text rather than a failed run."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return pybase64.b64encode(value).decode("ascii")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    return str(value)


def dumps(record: dict) -> bytes:
    """A record as one JSON line (with its newline); bytes payloads become base64."""
    return orjson.dumps(record, default=json_default, option=DUMP_OPTIONS)


DUMP_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


def metadata(record: dict) -> dict:
    """The record without its payloads, and without credentials in its URLs: what goes into
    .json members, tfrecord features and metadata parquet."""
    row = {name: value for name, value in record.items() if name != FILES}
    for name in _URL_FIELDS:
        value = row.get(name)
        if value is not None and "@" in value:
            row[name] = public_url(value)
    return row


_URL_FIELDS = ("url", "final_url")


def public_url(url: str) -> str:
    """`url` with any user name and password (`https://user:pw@host/`) replaced by ***:
    a dataset's metadata is shared, the credentials were not meant to be."""
    if "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def failure(record: dict, status: str, kind: str, message: str) -> dict:
    """Mark a record as failed, dropping any payload it had."""
    record.pop(FILES, None)
    record["status"] = status
    record["error_kind"] = kind
    record["error_message"] = message
    return record


# img2dataset's shard sizes, the defaults of a2d-shard, a2d-write and the all-in-ones
SAMPLES_PER_SHARD = 10000
SHARD_DIGITS = 5


def sample_digits(number_sample_per_shard: int) -> int:
    """How many key digits index a sample inside its shard (img2dataset's formula)."""
    return math.ceil(math.log10(number_sample_per_shard)) if number_sample_per_shard > 1 else 0


def make_key(shard: int, index: int, number_sample_per_shard: int, oom_shard_count: int) -> str:
    """img2dataset's key: shard * 10**digits + index, zero-padded; `000010005` is shard 1, row 5."""
    digits = sample_digits(number_sample_per_shard)
    return f"{shard * 10**digits + index:0{oom_shard_count + digits}d}"


def shard_name(shard: int, oom_shard_count: int) -> str:
    return f"{shard:0{oom_shard_count}d}"


def shard_fingerprint(rows: Iterable[dict]) -> str:
    """A digest of a shard's (key, url) pairs in key order.

    a2d-write stores it in `{shard}_stats.json`; a2d-shard --skip-done recomputes it
    from the input, so a changed input or sample count cannot silently shift keys.
    """
    digest = xxhash.xxh3_64()
    for row in sorted(rows, key=lambda r: r["key"]):
        digest.update(f"{row['key']}\t{public_url(row.get('url') or '')}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def compare_shard(stats: dict, rows: list[dict]) -> str:
    """How a finished shard (its stats) compares with the rows now meant for it: "same";
    "prefix" when it holds only the first of them (its input was cut short: redo it);
    "unknown" when its writer stored no fingerprint (img2dataset); else "different"."""
    stored = stats.get("fingerprint")
    if stored is None:
        return "unknown"
    count = stats.get("count", len(rows))
    if count == len(rows) and stored == shard_fingerprint(rows):
        return "same"
    if isinstance(count, int) and 0 < count < len(rows):
        first = sorted(rows, key=lambda r: r["key"])[:count]
        if stored == shard_fingerprint(first):
            return "prefix"
    return "different"


def shard_difference(stats: dict, rows: list[dict]) -> str:
    """In words, how a finished shard's rows differ from `rows` (compare_shard said "different")."""
    count = stats.get("count")
    if count != len(rows):
        return f"{count} rows then, {len(rows)} now"
    return f"{count} rows then and now, but other URLs or keys"


def _json_type(value) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return "a boolean"
    if type(value) is list:
        return "an array"
    return _TYPE_NAMES.get(type(value), type(value).__name__)
