"""Choosing records: deterministic sampling, a cap on the count, and --where filters.

A record that is not kept must not vanish from a shard: one that already belongs to a
shard stays, as `status: filtered` without payload, so the shard's metadata accounts
for every row and the shard still reaches its shard_size. A record with no shard yet
(sampling before a2d-shard, the cheap place) is simply left out of the stream.
Only successful records become `filtered`; a failed one keeps its own failure.
"""

import operator
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import xxhash

from .. import record as rec
from ..errors import UsageProblem

_OPERATORS = {"==": operator.eq, "!=": operator.ne, "<=": operator.le, ">=": operator.ge,
              "<": operator.lt, ">": operator.gt}
_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(==|!=|<=|>=|<|>|~|!~|\bin\b|\bnot in\b)\s*(.*?)\s*$")


def sampled(record: dict, fraction: float, seed: int) -> bool:
    """Keep a record with probability `fraction`, decided by an xxhash of its key (or URL
    before sharding) and the seed: the same subset in every process, on every host."""
    name = record.get("key") or record.get("url") or ""
    digest = xxhash.xxh64_intdigest(name.encode("utf-8", "surrogatepass"), seed=seed)
    return digest < fraction * 2**64


def _literal(text: str):
    """A condition's value: a number if it reads as one, null, or text (quotes optional)."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text == "null":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@dataclass
class Condition:
    """`FIELD OP VALUE`: OP one of == != < <= > >= (numbers or text), ~ and !~ (regular
    expression search), in and not in (a comma-separated list). A missing field fails
    every condition except != and not in."""

    text: str
    field: str
    op: str
    value: object

    @classmethod
    def parse(cls, text: str) -> "Condition":
        match = _CONDITION.match(text)
        if not match or not match.group(3) or match.group(3)[0] in "=<>!~":
            raise UsageProblem(f"--where {text!r}: expected FIELD OP VALUE, OP one of "
                               f"== != < <= > >= ~ !~ in 'not in'")
        field, op, raw = match.groups()
        if op in ("~", "!~"):
            try:
                value = re.compile(raw)
            except re.error as error:
                raise UsageProblem(f"--where {text!r}: bad regular expression ({error})") from None
        elif op in ("in", "not in"):
            value = [_literal(item.strip()) for item in raw.split(",")]
        else:
            value = _literal(raw)
        return cls(text, field, op, value)

    def holds(self, record: dict) -> bool:
        actual = record.get(self.field)
        if actual is None:  # missing: only `!= VALUE`, `not in` and `== null` hold
            return (self.op in ("!=", "not in") and self.value is not None) or (self.op == "==" and self.value is None)
        if self.op == "~":
            return self.value.search(str(actual)) is not None
        if self.op == "!~":
            return self.value.search(str(actual)) is None
        if self.op == "in":
            return actual in self.value
        if self.op == "not in":
            return actual not in self.value
        try:
            return _OPERATORS[self.op](actual, self.value)
        except TypeError:  # text against a number: compare as text
            return _OPERATORS[self.op](str(actual), str(self.value))


def not_kept(record: dict, reason: str) -> dict | None:
    """What becomes of a record that is not kept: None (left out) or a filtered row."""
    if record.get("shard") is None:
        return None
    if record.get("status") in (None, "success"):
        record.pop(rec.FILES, None)
        record["status"] = "filtered"
        record["error_kind"] = None
        record["error_message"] = reason
    return record


@dataclass
class Selection:
    fraction: float | None = None
    seed: int = 0
    max_records: int | None = None
    where: tuple[Condition, ...] = ()

    def __post_init__(self):
        if self.fraction is not None and not 0 <= self.fraction <= 1:
            raise UsageProblem("--fraction must be between 0 and 1")
        self._kept = 0  # records kept so far, for --max

    def choose(self, record: dict) -> dict | None:
        """--fraction and --max for one record, in input order: the record, marked filtered
        if it is not kept but belongs to a shard, or None to leave it out."""
        if self.fraction is not None and not sampled(record, self.fraction, self.seed):
            return not_kept(record, f"not sampled (--fraction {self.fraction} --seed {self.seed})")
        if self.max_records is not None and self._kept >= self.max_records:
            return not_kept(record, f"over --max {self.max_records}")
        self._kept += 1
        return record

    def sample(self, records: Iterable[dict]) -> Iterator[dict]:
        """--fraction and --max: before any transform, so dropped records cost nothing."""
        for record in records:
            chosen = self.choose(record)
            if chosen is not None:
                yield chosen

    def filter(self, records: Iterable[dict]) -> Iterator[dict]:
        """--where: after the transforms, so conditions can use width, height, duration..."""
        for record in records:
            failed = next((c for c in self.where if not c.holds(record)), None)
            if failed is not None and record.get("status") in (None, "success"):
                record = not_kept(record, f"filtered by --where {failed.text!r}")
            if record is not None:
                yield record

