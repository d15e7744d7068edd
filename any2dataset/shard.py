"""a2d-shard's library: stable keys and shard ids, resume and fan-out.

Records get `shard`, `key` (img2dataset's formula, by input position) and
`shard_size`, the exact row count of their shard. A shard is held back until it
is full or the input ends, since only then is its size known. Records that
arrive with all three already (an existing dataset read back) keep them.
"""

import collections
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from . import record as rec
from .errors import BadInput, UsageProblem
from .layout import finished_shards, last_shard
from .streams import RecordWriter


@dataclass
class ShardOptions:
    number_sample_per_shard: int = rec.SAMPLES_PER_SHARD
    oom_shard_count: int = rec.SHARD_DIGITS
    start_shard: int = 0
    part: tuple[int, int] | None = None  # (I, N): keep shards with shard % N == I
    done: dict[int, dict] = field(default_factory=dict)  # finished shards to skip, with their stats
    new_shard_on: str | None = None  # a field whose change of value starts a new shard (one input file each)


def shard_settings(*, number_sample_per_shard: int = rec.SAMPLES_PER_SHARD, oom_shard_count: int = rec.SHARD_DIGITS,
                   start_shard: int = 0,
                   extend: str | None = None, skip_done: str | None = None, part: str | None = None,
                   on_unreadable=None, new_shard_on: str | None = None) -> ShardOptions:
    """ShardOptions from a2d-shard's settings: `extend` and `skip_done` name an output folder,
    read now (the first shard after its last; its finished shards), `part` is "I/N"."""
    if extend and start_shard:
        raise UsageProblem("--extend and --start-shard both set the first shard; give one")
    return ShardOptions(
        number_sample_per_shard=number_sample_per_shard,
        oom_shard_count=oom_shard_count,
        start_shard=extend_after(extend) if extend else start_shard,
        part=parse_part(part) if part else None,
        done=resume_from(skip_done, on_unreadable) if skip_done else {},
        new_shard_on=new_shard_on,
    )


def parse_part(text: str) -> tuple[int, int]:
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageProblem(f"--part wants I/N, such as 0/4, not {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise UsageProblem(f"--part {text}: need 0 <= I < N")
    return index, count


def resume_from(folder: str, on_unreadable=None) -> dict[int, dict]:
    """The finished shards of an output folder, for --skip-done (a shard whose stats do not
    read, cut short by a crash, is not finished: it is reported to `on_unreadable`)."""
    return finished_shards(folder, on_unreadable=on_unreadable)


def extend_after(folder: str) -> int:
    """The first shard number after everything in an output folder, for --extend."""
    last = last_shard(folder)
    return 0 if last is None else last + 1


class InputChanged(UsageProblem):
    pass


def shard(records: Iterable[dict], options: ShardOptions | None = None) -> Iterator[dict]:
    """Give each record its shard, key and shard_size; drop what --part and --skip-done exclude."""
    options = options or ShardOptions()
    if options.number_sample_per_shard < 1:
        raise UsageProblem("--number-sample-per-shard must be at least 1")
    records = iter(records)
    first = next(records, None)
    if first is None:
        return
    if all(first.get(name) is not None for name in ("shard", "key", "shard_size")):
        yield from _keep_existing(first, records, options)
    else:
        yield from _assign(first, records, options)


def _wanted(shard_id: int, options: ShardOptions) -> bool:
    if options.part is not None and shard_id % options.part[1] != options.part[0]:
        return False
    return shard_id not in options.done


def _keep_existing(first: dict, records: Iterator[dict], options: ShardOptions) -> Iterator[dict]:
    for record in _chain(first, records):
        if record.get("shard") is None or record.get("key") is None or record.get("shard_size") is None:
            raise BadInput("record has no shard, key or shard_size, but the first record had all three")
        if _wanted(record["shard"], options):
            yield record


def _assign(first: dict, records: Iterator[dict], options: ShardOptions) -> Iterator[dict]:
    per_shard = options.number_sample_per_shard
    digits = rec.sample_digits(per_shard)
    width = options.oom_shard_count + digits
    shard_id = options.start_shard
    held = _Held()  # the current shard, until its size is known
    passing: list[dict] = []  # rows of a finished shard being checked against its fingerprint
    index = 0

    def release(size: int) -> Iterator[dict]:
        if shard_id in options.done and (_verify(shard_id, passing, options) != "prefix" or (
                options.part is not None and shard_id % options.part[1] != options.part[0])):
            held.clear()  # finished: skipped (a shard finished from a cut-short input is redone)
        for record in held.drain():  # only rows of wanted (or redone) shards are held
            record["shard_size"] = size
            yield record

    boundary = options.new_shard_on
    group = first.get(boundary) if boundary else None
    for record in _chain(first, records):
        if boundary and record.get(boundary) != group:
            group = record.get(boundary)
            if index:  # as img2dataset does with each input file: the next file starts a new shard
                yield from release(index)
                passing = []
                shard_id += 1
                index = 0
        if index == per_shard:
            yield from release(per_shard)
            passing = []
            shard_id += 1
            index = 0
        record["shard"] = shard_id
        record["key"] = f"{shard_id * 10**digits + index:0{width}d}"
        if shard_id in options.done:
            passing.append({"key": record["key"], "url": record.get("url")})  # checked against the finished shard
            held.append(record)  # kept (on disk past a budget) in case that is a prefix to redo
        elif _wanted(shard_id, options):
            held.append(record)
        index += 1
    yield from release(index)
    beyond = sorted(s for s in options.done if s > shard_id)
    if beyond:
        raise InputChanged(
            f"the output already has shard {rec.shard_name(beyond[0], options.oom_shard_count)}, but this "
            f"input ends at shard {rec.shard_name(shard_id, options.oom_shard_count)}: the input or "
            f"--number-sample-per-shard changed since it was written; use a new output folder"
        )


class _Held:
    """Records held until their shard's size is known: in memory up to HELD_BYTES or
    HELD_RECORDS, the rest in a temporary file (a shard of a packed folder carries its
    payloads: 868 MB held in memory before), read back in order when released."""

    HELD_BYTES = 64 << 20
    HELD_RECORDS = 50_000

    def __init__(self):
        self.memory: collections.deque[dict] = collections.deque()
        self.size = 0
        self.spill = None  # a temporary file of JSON lines, once memory is full
        self.spilled = 0

    def append(self, record: dict) -> None:
        if self.spill is None:
            self.memory.append(record)
            self.size += _weight(record)
            if self.size > self.HELD_BYTES or len(self.memory) > self.HELD_RECORDS:
                import tempfile

                self.spill = tempfile.TemporaryFile(prefix="a2d-shard-")
            return
        self.spill.write(rec.dumps(record))
        self.spilled += 1

    def clear(self) -> None:
        self.memory.clear()
        self.size = 0
        if self.spill is not None:
            self.spill.close()
            self.spill, self.spilled = None, 0

    def drain(self) -> Iterator[dict]:
        """Every held record in order, each handed over for good: in one process the later
        stages add payloads to these very dicts, which a list would keep until the shard is out."""
        while self.memory:
            yield self.memory.popleft()
        self.size = 0
        if self.spill is not None:
            spill, self.spill, self.spilled = self.spill, None, 0
            with spill:
                spill.seek(0)
                for line in spill:
                    yield rec.parse(line)


def _weight(record: dict) -> int:
    """Roughly the bytes a held record takes: its payloads and a dict's overhead."""
    files = record.get(rec.FILES)
    return 400 + (sum(len(p) for p in files.values()) if files else 0)


def _chain(first, rest):
    yield first
    yield from rest


def _verify(shard_id: int, rows: list[dict], options: ShardOptions) -> str:
    """rec.compare_shard's verdict on a finished shard; raises when it was written from other rows.
    (No fingerprint, as img2dataset writes none: nothing to compare, the shard counts as done.)"""
    stats = options.done[shard_id]
    verdict = rec.compare_shard(stats, rows)
    if verdict == "different":
        name = rec.shard_name(shard_id, options.oom_shard_count)
        raise InputChanged(
            f"shard {name} in the output was written from different rows ({rec.shard_difference(stats, rows)}): "
            f"the input or --number-sample-per-shard changed since; "
            f"stopping rather than giving new rows old keys. Use a new output folder"
        )
    return verdict


def split(records: Iterable[dict], folder: str, shards_per_file: int = 1, oom_shard_count: int = 5) -> list[str]:
    """Write records into one JSONL file per shard (or per K shards) for fan-out; return the names.

    Each file is written under a hidden name and renamed when whole.
    """
    os.makedirs(folder, exist_ok=True)
    written = []
    finished_groups = set()
    current_group = None
    out = None
    temp = final = None

    def close():
        if out is not None:
            out.close()
            os.replace(temp, final)
            written.append(final)

    try:
        for record in records:
            group = record["shard"] // shards_per_file
            if group != current_group:
                close()
                if group in finished_groups:
                    raise BadInput(f"records of shard {record['shard']} are not together; --split needs them so")
                finished_groups.add(group)
                current_group = group
                name = rec.shard_name(group * shards_per_file, oom_shard_count)
                final = os.path.join(folder, f"{name}.jsonl")
                temp = os.path.join(folder, f".{name}.jsonl.tmp{os.getpid()}")
                out = RecordWriter(temp)
            out.write(record)
        close()
        out = None
    finally:
        if out is not None:  # interrupted: leave no partial file under a final name
            out.stream.close()
            os.remove(temp)
    return written


if __name__ == "__main__":  # python -m any2dataset.shard
    from .commands.shard import main

    main()
