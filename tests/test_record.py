import random

import orjson
import pybase64
import pytest

from any2dataset import record as rec
from any2dataset.errors import BadInput


def test_round_trip_of_binary_payloads_and_unknown_fields():
    rng = random.Random(7)
    for size in (0, 1, 2, 3, 255, 256, 65537):
        payload = bytes(range(256)) * (size // 256) + rng.randbytes(size % 256)
        original = {
            "key": "000010005",
            "url": "http://127.0.0.1/x.jpg",
            "caption": "snow ❄ \u2028 and \"quotes\"\n",
            "shard": 1,
            "shard_size": 10,
            "files": {"jpg": payload, "seg.png": payload[::-1]},
            "my_column": {"nested": [1, 2.5, None, True]},
            "score": 0.25,
        }
        line = rec.dumps(original)
        assert line.endswith(b"\n") and line.count(b"\n") == 1  # one record, one line
        back = rec.decode_payloads(rec.parse(line))
        assert back == original
        # On the wire a payload is standard base64 under files.<ext>.
        assert orjson.loads(line)["files"]["jpg"] == pybase64.b64encode(payload).decode()


def test_string_payloads_pass_through_unchanged():
    line = b'{"key":"1","files":{"bin":"AAEC"},"other":1}\n'
    assert rec.dumps(rec.parse(line)) == line


@pytest.mark.parametrize(
    "line, message",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, got an array"),
        (b'"text"', "expected a JSON object, got a string"),
        (b'{"url": 5}', "field url must be a string, got an integer"),
        (b'{"shard": "3"}', "field shard must be an integer, got a string"),
        (b'{"shard": true}', "field shard must be an integer, got a boolean"),
        (b'{"shard": -1}', "field shard must not be negative"),
        (b'{"width": 1.5}', "field width must be an integer, got a number"),
        (b'{"files": []}', "field files must be an object, got an array"),
        (b'{"files": {"jpg": 3}}', "files.jpg must be a base64 string, got an integer"),
        (b'{"files": {"a/b": "AA=="}}', "invalid file extension 'a/b'"),
        (b'{"status": "ok"}', "unknown status 'ok'"),
        (b'{"error_kind": "whatever"}', "unknown error_kind 'whatever'"),
        (b'{"key": "a.b"}', "invalid key 'a.b'"),
        (b'{"key": ""}', "invalid key ''"),
    ],
)
def test_bad_lines_are_reported_with_what_is_wrong(line, message):
    with pytest.raises(BadInput) as caught:
        rec.parse(line)
    assert message in str(caught.value)


def test_invalid_base64_is_found_when_payloads_are_decoded():
    record = rec.parse(b'{"files": {"jpg": "not base64!"}}')
    with pytest.raises(BadInput, match=r"invalid base64 in files\.jpg"):
        rec.decode_payloads(record)


@pytest.mark.parametrize(
    "shard, index, per_shard, oom, key",
    [
        (1, 5, 10000, 5, "000010005"),  # img2dataset's documented example
        (0, 0, 10000, 5, "000000000"),
        (12, 999, 1000, 5, "00012999"),
        (3, 7, 10, 2, "037"),
        (4, 0, 1, 3, "004"),
    ],
)
def test_key_formula_matches_img2dataset(shard, index, per_shard, oom, key):
    assert rec.make_key(shard, index, per_shard, oom) == key


def test_failure_drops_payload_and_keeps_other_fields():
    record = {"url": "u", "files": {"jpg": b"x"}, "mine": 1}
    rec.failure(record, "failed_to_download", "timeout", "timed out")
    assert record == {"url": "u", "mine": 1, "status": "failed_to_download", "error_kind": "timeout",
                      "error_message": "timed out"}
