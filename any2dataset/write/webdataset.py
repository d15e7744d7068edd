"""webdataset tars: `{key}.{ext}` per payload, `{key}.txt` caption, `{key}.json` metadata.

Plain ustar headers (no PAX), mtime 0, uid/gid 0 and members in sorted order, so the
same records always give byte-identical tars that every tar reader accepts.
webdataset's TarWriter writes PAX headers with a float mtime and measured 200 us per
sample against 15 here (benchmarks/README.md), so the tar is written directly.
"""

from ..errors import BadInput
from .background import BackgroundWriter, write_all
from .sink import SampleSink, SinkSettings, sample_members

FIXED_MTIME = 0
_BLOCK = 512


_ZEROS = b"\0" * _BLOCK


# A ustar header is 512 bytes of fixed-width fields; ours differ only in name, size and
# checksum, so the rest is built once. The standard tarfile module builds the same bytes
# (a test compares them) at ~7x the cost, which showed at 250 MB/s.
_NAME_FIELD, _SIZE_AT, _CHECKSUM_AT = 100, 124, 148
_MAX_SIZE = 8**11 - 1  # 11 octal digits
_AFTER_NAME = (
    b"0000644\0" + b"0000000\0" + b"0000000\0"  # mode, uid, gid
    + b"\0" * 12  # size, filled in per member
    + b"%011o\0" % FIXED_MTIME
    + b" " * 8  # checksum, computed over the header with this field as spaces
    + b"0" + b"\0" * 100  # regular file, no link
    + b"ustar\x0000" + b"\0" * 64  # magic and version, empty user and group names
    + b"\0" * (16 + 155 + 12)  # no device numbers (a regular file), no prefix, padding
)


def _header(name: str, size: int) -> bytes:
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) > _NAME_FIELD:
        raise BadInput(f"tar member name {name!r} is too long for a plain ustar header (100 bytes)")
    if size > _MAX_SIZE:
        raise BadInput(f"tar member {name!r} is larger than a ustar header can say (8 GiB)")
    header = bytearray(encoded.ljust(_NAME_FIELD, b"\0") + _AFTER_NAME)
    header[_SIZE_AT:_SIZE_AT + 12] = b"%011o\0" % size
    header[_CHECKSUM_AT:_CHECKSUM_AT + 8] = b"%06o\0 " % sum(header)
    return bytes(header)


class WebdatasetSink(SampleSink):
    suffixes = (".tar", ".parquet")

    def __init__(self, temp_path, settings: SinkSettings):
        super().__init__(temp_path, settings)
        self.file = open(temp_path(".tar"), "wb", buffering=0)
        self.io = BackgroundWriter()

    def add_sample(self, record: dict) -> None:
        key = record["key"]
        parts = []
        for extension, data in sorted(sample_members(record).items()):
            parts.append(_header(f"{key}.{extension}", len(data)))  # may refuse the sample: nothing written yet
            parts.append(data)
            padding = -len(data) % _BLOCK
            if padding:
                parts.append(_ZEROS[:padding])
        self.io.submit(write_all, self.file.fileno(), parts)

    def close(self) -> None:
        if not self.file.closed:
            try:
                self.io.submit(write_all, self.file.fileno(), [_ZEROS, _ZEROS])  # end-of-archive marker
                self.io.close()
            finally:
                self.file.close()

