"""A tar stream's regular files as (name, bytes), read straight from the 512-byte headers.

Python's tarfile builds a TarInfo per member (every field parsed, checksums both ways): on
a webdataset shard of small samples that is most of the reading time (benchmarks/loader.py).
This reader parses only what a sample needs: the name (ustar prefix, GNU long names, pax
`path`), the size (pax `size` too), the type, and checks each header's checksum. Anything
else (a compressed stream not named so, sparse files, base-256 sizes, unknown types) raises
NotPlain with the count of files already given, and the caller goes on with tarfile.
"""

from collections.abc import Iterator

from ..errors import BadInput

BLOCK = 512
_FILE_TYPES = (b"0", b"\0", b"7")
_SKIPPED_TYPES = (b"1", b"2", b"3", b"4", b"5", b"6", b"g", b"K")  # links, devices, folders, global pax
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")


class NotPlain(Exception):
    """A tar this reader leaves to tarfile, after `given` files."""

    def __init__(self, given: int):
        super().__init__(given)
        self.given = given


def members(stream) -> Iterator[tuple[str, bytes]]:
    given = 0
    long_name: bytes | None = None
    pax: dict[bytes, bytes] = {}
    while True:
        header = stream.read(BLOCK)
        if given == 0 and not pax and long_name is None and header.startswith(_COMPRESSED):
            raise NotPlain(0)
        if len(header) < BLOCK or not any(header):  # the end (two zero blocks; a missing end is forgiven)
            if header and any(header):
                raise BadInput("not a readable tar file (cut short in a header)")
            return
        _check(header)
        if header[124] & 0x80:  # a base-256 size (a member of 8 GB or more)
            raise NotPlain(given)
        kind = header[156:157]
        size = int(pax[b"size"]) if b"size" in pax else _octal(header[124:136])
        data = _read_member(stream, size)
        if kind == b"x":
            pax = _pax_records(data)
            continue
        if kind == b"L":
            long_name = data.split(b"\0", 1)[0]
            continue
        if kind in _FILE_TYPES:
            name = pax.get(b"path") or long_name or _ustar_name(header)
            if not name.endswith(b"/"):  # (an old tar's folder)
                yield name.decode("utf-8", "surrogateescape"), data
                given += 1
        elif kind not in _SKIPPED_TYPES:
            raise NotPlain(given)
        long_name, pax = None, {}


def _check(header: bytes) -> None:
    try:
        stored = _octal(header[148:156])
    except ValueError:
        raise BadInput("not a readable tar file (bad header)") from None
    if stored != sum(header) - sum(header[148:156]) + 8 * 32:  # the checksum field counts as spaces
        raise BadInput("not a readable tar file (bad header checksum)")


def _octal(field: bytes) -> int:
    digits = field.split(b"\0", 1)[0].strip()
    return int(digits, 8) if digits else 0


def _ustar_name(header: bytes) -> bytes:
    name = header[:100].split(b"\0", 1)[0]
    if header[257:263] == b"ustar\0":  # POSIX: a prefix folder (GNU tars use these bytes otherwise)
        prefix = header[345:500].split(b"\0", 1)[0]
        if prefix:
            return prefix + b"/" + name
    return name


def _read_member(stream, size: int) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise BadInput("not a readable tar file (cut short in a member)")
    padding = -size % BLOCK
    if padding and len(stream.read(padding)) < padding:
        raise BadInput("not a readable tar file (cut short in a member)")
    return data


def _pax_records(data: bytes) -> dict[bytes, bytes]:
    """`length key=value\\n` records."""
    records, position = {}, 0
    while position < len(data) and data[position:position + 1] != b"\0":
        space = data.index(b" ", position)
        length = int(data[position:space])
        key, _, value = data[space + 1:position + length - 1].partition(b"=")
        records[key] = value
        position += length
    return records
