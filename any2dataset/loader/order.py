"""An epoch's sequence for one rank and worker of the loader: which rows, in which order, and
each row's slot (its place in this rank's and worker's share, what resuming counts).

Lists: the epoch goes through the index's chunks in windows of `window` chunks, the rows of a
window in a seeded order. Epoch 0 takes the chunks in the list's order, as they are spilled
(so it starts at once); later epochs in a seeded order of all chunks. The epoch's sequence is
dealt out row by row: rank r takes every world-th row, and its worker w every workers-th of
those, so every rank and worker reads the (small) index rows and fetches only its own.

Shards (datasets): the shards in a seeded order each epoch; each rank and worker reads its own
shards (as webdataset splits by node and worker) through a seeded shuffle buffer, or, with
fewer shards than ranks x workers, every one reads them all and takes its rows as for lists.

`even` ("drop" or "pad") gives every rank as many samples, as DDP needs: it waits for a list to
be spilled whole and counts a dataset's shards first.
"""

import itertools
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import xxhash

from ..errors import UsageProblem


@dataclass(frozen=True)
class Part:
    """One rank's and DataLoader worker's share of an epoch."""
    rank: int = 0
    world: int = 1
    worker: int = 0
    workers: int = 1

    @property
    def units(self) -> int:
        return self.world * self.workers

    @property
    def unit(self) -> int:
        return self.rank * self.workers + self.worker

    def slot(self, position: int) -> int | None:
        """This part's slot for the epoch's `position`-th row, or None when it is another part's."""
        taken, rank = divmod(position, self.world)
        if rank != self.rank:
            return None
        slot, worker = divmod(taken, self.workers)
        return slot if worker == self.worker else None

    def slots_before(self, end: int) -> int:
        """How many of this part's slots the epoch's first `end` rows hold."""
        taken = (end - self.rank + self.world - 1) // self.world  # this rank's rows among them
        return max(0, (taken - self.worker + self.workers - 1) // self.workers)


def seed_of(seed: int, *parts: int) -> int:
    """A seed for (seed, epoch, ...): the same on every rank and worker."""
    return xxhash.xxh64_intdigest(":".join(map(str, (seed, *parts))).encode())


def seeded(seed: int, *parts: int) -> random.Random:
    return random.Random(seed_of(seed, *parts))


def list_epoch(index, epoch: int, part: Part, *, shuffle: bool, seed: int, window: int, even: str | None,
               done: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """(slot, natural position, row) of a list index, from slot `done` on."""
    total = len(index) if even else None
    if shuffle and epoch > 0:
        chunks: Iterable[int] = list(range(index.chunk_count()))
        seeded(seed, epoch).shuffle(chunks)
    else:
        chunks = index.chunks()

    def sequence() -> Iterator[tuple[int, tuple[int, bytes]]]:
        start = 0
        for number, group in enumerate(_batched(chunks, window)):
            if index.complete() and not (even == "pad" and start == 0):
                size = sum(index.chunk_size(chunk) for chunk in group)
                if part.slots_before(start + size) <= done:  # all of ours in it are done: not read
                    start += size
                    continue
            rows, positions = [], []
            for chunk in group:
                chunk_rows = index.rows(chunk)
                rows += chunk_rows
                positions += range(chunk * index.chunk_rows, chunk * index.chunk_rows + len(chunk_rows))
            order = list(range(len(rows)))
            if shuffle:
                seeded(seed, epoch, number).shuffle(order)
            for offset, row in enumerate(order):
                yield start + offset, (positions[row], rows[row])
            start += len(rows)

    for slot, (position, row) in _dealt(sequence(), part, even, total, done):
        yield slot, position, row


def shard_epoch(index, epoch: int, part: Part, *, shuffle: bool, seed: int, buffer: int, even: str | None,
                done: int = 0) -> Iterator[tuple[int, None, dict]]:
    """(slot, None, record) of a dataset's shards, from slot `done` on."""
    shards = list(range(index.chunk_count()))
    if shuffle:
        seeded(seed, epoch).shuffle(shards)

    def records(taken: list[int], *seed_parts: int) -> Iterator[dict]:
        stream = itertools.chain.from_iterable(index.records(shard) for shard in taken)
        return _buffered(stream, buffer, seeded(seed, epoch, *seed_parts)) if shuffle else stream

    if len(shards) < part.units:  # too few shards to give each part its own: rows dealt as for lists
        total = len(index) if even else None
        for slot, record in _dealt(enumerate(records(shards)), part, even, total, done):
            yield slot, None, record
        return
    mine = shards[part.unit::part.units]
    quota = _quota([sum(index.chunk_size(shard) for shard in shards[unit::part.units]) for unit in range(part.units)],
                   part, even) if even else None
    slot = 0
    while True:
        for record in records(mine, part.unit):
            if quota is not None and slot >= quota:
                return
            if slot >= done:
                yield slot, None, record
            slot += 1
        if quota is None or slot >= quota or slot == 0:  # "pad" goes round its own shards again
            return


def _dealt(sequence: Iterator[tuple[int, object]], part: Part, even: str | None, total: int | None,
           done: int) -> Iterator[tuple[int, object]]:
    """This part's (slot, item) of the epoch's (position, item) sequence; with `even`, `total` rows
    trimmed to a multiple of the world size ("drop") or filled up with the epoch's first rows ("pad")."""
    limit = total // part.world * part.world if even == "drop" else None
    first = []
    for position, item in sequence:
        if limit is not None and position >= limit:
            break
        if even == "pad" and position < part.world:
            first.append(item)
        slot = part.slot(position)
        if slot is not None and slot >= done:
            yield slot, item
    if even == "pad" and first:
        for position in range(total, -(-total // part.world) * part.world):
            slot = part.slot(position)
            if slot is not None and slot >= done:
                yield slot, first[(position - total) % len(first)]


def _quota(counts: list[int], part: Part, even: str) -> int:
    """This worker's share of its rank's samples when every rank gets as many: the rank's
    workers give up samples from the largest share ("drop") or repeat some of the smallest
    non-empty one ("pad") until the rank's total is the least (or the most) of any rank."""
    per_rank = [counts[rank * part.workers:(rank + 1) * part.workers] for rank in range(part.world)]
    target = (min if even == "drop" else max)(sum(shares) for shares in per_rank)
    shares = list(per_rank[part.rank])
    if even == "pad" and sum(shares) < target and not any(shares):
        raise UsageProblem(f"even='pad': rank {part.rank} has no samples to repeat (more ranks than samples?)")
    for _ in range(sum(shares) - target):  # (drop)
        shares[shares.index(max(shares))] -= 1
    for _ in range(target - sum(shares)):  # (pad)
        smallest = min(share for share in shares if share)
        shares[shares.index(smallest)] += 1
    return shares[part.worker]


def _buffered(records: Iterator[dict], size: int, rng: random.Random) -> Iterator[dict]:
    """A seeded shuffle buffer: the same input gives the same output."""
    buffer: list[dict] = []
    for record in records:
        if len(buffer) < size:
            buffer.append(record)
            continue
        index = rng.randrange(size)
        buffer[index], record = record, buffer[index]
        yield record
    rng.shuffle(buffer)
    yield from buffer


def _batched(items: Iterable[int], size: int) -> Iterator[list[int]]:
    iterator = iter(items)
    while group := list(itertools.islice(iterator, size)):
        yield group
