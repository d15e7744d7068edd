"""a2d-read's own tar reader (read/tar.py) against Python's tarfile on the same archives: every
format tarfile writes (ustar, GNU, pax), long and non-ASCII names, links, folders, empty and
block-sized files; archives it leaves to tarfile (compressed under a .tar name, a base-256
size) read in full by falling back; damaged archives are errors, never wrong data."""

import gzip
import io
import random
import tarfile

import pytest

from any2dataset.errors import BadInput
from any2dataset.read import tar
from any2dataset.read.dataset import read_webdataset


def archive(fmt: int, entries: list[tuple[str, bytes | str | None]]) -> bytes:
    """entries: (name, bytes) a file, (name, None) a folder, (name, "->target") a symlink."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as writer:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                writer.addfile(info)
            elif isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data[2:]
                writer.addfile(info)
            else:
                info.size = len(data)
                writer.addfile(info, io.BytesIO(data))
    return out.getvalue()


def with_tarfile(data: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|*") as reader:
        return [(member.name, reader.extractfile(member).read()) for member in reader if member.isfile()]


def ours(data: bytes) -> list[tuple[str, bytes]]:
    return list(tar.members(io.BytesIO(data)))


ENTRIES = [
    ("000001.jpg", b"x" * 1000), ("000001.json", b'{"a": 1}'), ("000002.txt", b""),
    ("folder", None), ("folder/000003.png", b"y" * 512), ("link.jpg", "->000001.jpg"),
    ("a/" + "long" * 30 + "/000004.jpg", b"z" * 1025),  # longer than 100: prefix, GNU long name or pax
    ("naïve/ünïcode-名前.jpg", b"u" * 3),
]


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_the_same_files_as_tarfile_in_every_format(fmt):
    data = archive(fmt, ENTRIES)
    assert ours(data) == with_tarfile(data)
    assert [name for name, _ in ours(data)] == ["000001.jpg", "000001.json", "000002.txt", "folder/000003.png",
                                                 "a/" + "long" * 30 + "/000004.jpg", "naïve/ünïcode-名前.jpg"]


def test_random_archives_agree_with_tarfile():
    rng = random.Random(5)
    for _ in range(40):
        entries = [(f"{'d/' * rng.randint(0, 3)}{i:05d}.{rng.choice(['jpg', 'json', 'txt'])}",
                    rng.randbytes(rng.choice([0, 1, 511, 512, 513, rng.randint(0, 5000)]))) for i in range(20)]
        data = archive(rng.choice([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]), entries)
        assert ours(data) == with_tarfile(data) == entries


def test_a_compressed_tar_and_a_base256_size_go_to_tarfile(tmp_path):
    data = archive(tarfile.GNU_FORMAT, [("000001.jpg", b"a" * 700), ("000001.json", b"{}"),
                                        ("000002.jpg", b"b" * 10), ("000002.json", b"{}")])
    with pytest.raises(tar.NotPlain) as raised:
        ours(gzip.compress(data))
    assert raised.value.given == 0
    # the second sample's .jpg with its size written base-256 (as GNU tar does for 8 GB and more)
    second = 3 * tar.BLOCK + 2 * tar.BLOCK  # two headers, 700 bytes (2 blocks) and 2 bytes (1 block)
    header = bytearray(data[second:second + tar.BLOCK])
    assert header[:10] == b"000002.jpg"
    header[124:136] = b"\x80" + (10).to_bytes(11, "big")
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}\0 ".encode()
    patched = data[:second] + bytes(header) + data[second + tar.BLOCK:]
    with pytest.raises(tar.NotPlain) as raised:
        ours(patched)
    assert raised.value.given == 2
    for name, content in (("gz.tar", gzip.compress(data)), ("base256.tar", patched)):
        (tmp_path / name).write_bytes(content)
        records = list(read_webdataset(str(tmp_path / name)))
        assert [(r["key"], r["files"]) for r in records] == [
            ("000001", {"jpg": b"a" * 700}), ("000002", {"jpg": b"b" * 10})], name


def test_damaged_archives_are_errors():
    data = archive(tarfile.PAX_FORMAT, ENTRIES)
    flipped = bytearray(data)
    flipped[5] ^= 0x20  # a name byte of the first header
    with pytest.raises(BadInput, match="checksum"):
        ours(bytes(flipped))
    for cut in (300, tar.BLOCK + 10, 3 * tar.BLOCK + 300):
        with pytest.raises(BadInput, match="cut short"):
            ours(data[:cut])
    assert ours(data[:-2 * tar.BLOCK]) == with_tarfile(data)  # no end blocks: forgiven, as tarfile does
