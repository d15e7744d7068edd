"""The tfrecord codec on its own: Examples and frames round-trip, damage is found."""

import io

import pytest

from any2dataset import tfrecord_codec as codec

crc32c = pytest.importorskip("google_crc32c")


def encode(features: dict) -> bytes:
    return b"".join(codec.example(features))


def test_example_round_trip():
    features = {"key": "0001", "jpg": b"\xff\xd8", "width": 640, "neg": -3, "flag": True, "score": 0.5,
                "clips": [[0, 1.5]], "none": None}
    parsed = codec.parse_example(encode(features))
    assert parsed == {"key": [b"0001"], "jpg": [b"\xff\xd8"], "width": [640], "neg": [-3], "flag": [1],
                      "score": [0.5], "clips": [b"[[0,1.5]]"]}  # null features are left out


def test_example_is_sorted_and_reproducible():
    assert encode({"b": 1, "a": "x"}) == encode({"a": "x", "b": 1})
    assert list(codec.parse_example(encode({"b": 1, "a": "x"}))) == ["a", "b"]


def test_frames_round_trip_and_detect_damage():
    records = [encode({"key": str(i)}) for i in range(3)]
    data = b"".join(b"".join(codec.frame(crc32c, [record])) for record in records)
    assert list(codec.read_frames(io.BytesIO(data))) == records
    damaged = bytearray(data)
    damaged[14] ^= 1  # inside the first record's data
    with pytest.raises(ValueError, match="CRC"):
        list(codec.read_frames(io.BytesIO(bytes(damaged))))
    assert len(list(codec.read_frames(io.BytesIO(bytes(damaged)), check_crc=False))) == 3
    with pytest.raises(ValueError, match="truncated"):
        list(codec.read_frames(io.BytesIO(data[:-2])))
