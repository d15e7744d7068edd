"""TFRecord framing and tf.train.Example encoding, without TensorFlow: what a2d-write's
tfrecord shards are made of and what a2d-read reads back from them.

A TFRecord is a little-endian uint64 length, the masked CRC32C of the length, the data,
the masked CRC32C of the data. An Example maps feature names to lists of bytes, int64 or
float values: strings are written as bytes, integers and booleans as int64, numbers as
float, lists and objects as JSON text.
"""

import struct

import orjson

from . import record as rec
from .errors import MissingExtra

_MASK_DELTA = 0xA282EAD8
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


def crc32c_module():
    """google_crc32c (the `tfrecord` extra), or MissingExtra."""
    try:
        import google_crc32c
    except ImportError:
        raise MissingExtra("the tfrecord format", "tfrecord", "google-crc32c") from None
    return google_crc32c


def masked_crc(crc32c, parts: list[bytes]) -> int:
    """TFRecord's mask, so a CRC stored inside CRC'd data does not look like a CRC."""
    crc = 0
    for part in parts:
        crc = crc32c.extend(crc, part)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


_ONE_BYTE = [bytes((i,)) for i in range(128)]


def _varint(value: int) -> bytes:
    if 0 <= value < 128:
        return _ONE_BYTE[value]  # tags and most lengths: the common case, ~100 times a record
    value &= 0xFFFFFFFFFFFFFFFF  # negative int64 as its 10-byte two's complement, as protobuf does
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Messages are built as lists of parts, never joined: a payload is not copied once per
# nesting level (five levels), and the parts go to one writev.

def _field(number: int, parts: list[bytes]) -> list[bytes]:
    """A length-delimited protobuf field (wire type 2) around the given parts."""
    return [_varint(number << 3 | 2) + _varint(sum(map(len, parts))), *parts]


def _feature(value) -> list[bytes] | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _field(1, _field(1, [bytes(value)]))  # BytesList
    if type(value) is str:
        return _field(1, _field(1, [value.encode("utf-8", "surrogatepass")]))
    if type(value) in (bool, int) and -(1 << 63) <= value < (1 << 63):
        return _field(3, _field(1, [_varint(int(value))]))  # Int64List, packed
    if type(value) is float:
        return _field(2, _field(1, [struct.pack("<f", value)]))  # FloatList, packed
    return _field(1, _field(1, [orjson.dumps(value, default=rec.json_default)]))


def example(features: dict) -> list[bytes]:
    """A serialized tf.train.Example, as parts; features in sorted order, so output is reproducible."""
    entries = []
    for name in sorted(features):
        feature = _feature(features[name])
        if feature is not None:
            entries += _field(1, _field(1, [name.encode("utf-8")]) + _field(2, feature))
    return _field(1, entries)


def frame(crc32c, parts: list[bytes]) -> list[bytes]:
    """One TFRecord: length, its masked CRC, the data, its masked CRC."""
    length = _U64.pack(sum(map(len, parts)))
    return [length, _U32.pack(masked_crc(crc32c, [length])), *parts, _U32.pack(masked_crc(crc32c, parts))]


# Reading back (a2d-read on a tfrecord dataset): the inverse of the above.

def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _fields(data: bytes):
    """(field number, wire type, value) of a protobuf message; value is bytes for length-delimited."""
    position, end = 0, len(data)
    while position < end:
        tag, position = _read_varint(data, position)
        number, wire = tag >> 3, tag & 7
        if wire == 2:
            length, position = _read_varint(data, position)
            yield number, wire, data[position:position + length]
            position += length
        elif wire == 0:
            value, position = _read_varint(data, position)
            yield number, wire, value
        elif wire == 5:
            yield number, wire, data[position:position + 4]
            position += 4
        elif wire == 1:
            yield number, wire, data[position:position + 8]
            position += 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _feature_values(feature: bytes) -> list:
    values = []
    for kind, _, value_list in _fields(feature):
        for _, wire, value in _fields(value_list):
            if kind == 1:
                values.append(bytes(value))
            elif kind == 2:
                values.extend(v for (v,) in struct.iter_unpack("<f", value))  # packed or single
            elif kind == 3:
                if wire == 0:
                    values.append(_signed(value))
                else:
                    position = 0
                    while position < len(value):
                        number, position = _read_varint(value, position)
                        values.append(_signed(number))
    return values


def parse_example(data: bytes) -> dict[str, list]:
    """A serialized tf.train.Example to {feature name: list of values}."""
    features = {}
    for _, _, features_message in _fields(data):
        for _, _, entry in _fields(features_message):
            name, feature = None, b""
            for number, _, value in _fields(entry):
                if number == 1:
                    name = bytes(value).decode("utf-8", "surrogateescape")
                elif number == 2:
                    feature = value
            features[name] = _feature_values(feature)
    return features


def read_frames(stream, check_crc: bool = True):
    """The records of a TFRecord stream, each CRC-checked. Raises ValueError on damage."""
    crc32c = crc32c_module() if check_crc else None
    while True:
        head = stream.read(12)
        if not head:
            return
        if len(head) < 12:
            raise ValueError("truncated record header")
        length_bytes = head[:8]
        (length,) = _U64.unpack(length_bytes)
        if crc32c and _U32.unpack(head[8:])[0] != masked_crc(crc32c, [length_bytes]):
            raise ValueError("record length fails its CRC")
        data = stream.read(length)
        tail = stream.read(4)
        if len(data) < length or len(tail) < 4:
            raise ValueError("truncated record")
        if crc32c and _U32.unpack(tail)[0] != masked_crc(crc32c, [data]):
            raise ValueError("record data fails its CRC")
        yield data
