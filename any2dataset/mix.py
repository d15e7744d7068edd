"""Mixing several record streams into one: by weight at random (seeded), round-robin, or
interleaved in fixed blocks; resumable mid-way through a state dict.

    mixer = Mixer([stream_a, stream_b], mode="random", weights=[3, 1], seed=0)
    for item in mixer: ...          # any items: records, lines, samples
    mixer.taken                     # items taken from each stream so far
    state = mixer.state_dict()      # later: Mixer(fresh streams, same options).load_state_dict(state)

A stage of its own (`a2d-mix` is its command, the loader mixes its sources with it): it
imports only the vocabulary, and never reads ahead, so a stream is pulled only when its
turn comes.
"""

import bisect
import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from .errors import UsageProblem

MODES = ("random", "round-robin", "interleave")
UNTIL = ("all", "first")
STATE_VERSION = 1


@dataclass
class MixOptions:
    """How streams are mixed (a2d-mix's options, with its defaults).

    mode: `random` picks each item's stream with probability proportional to its weight among
    the streams not yet ended; `round-robin` takes one item from each stream in turn;
    `interleave` takes a block of items from each stream in turn (`block` items from every
    stream, or as many as each stream's weight, which must then be whole numbers).
    until: `all` goes on with the other streams when one ends; `first` stops there.
    """

    mode: str = "random"
    weights: Sequence[float] | None = None  # one per stream; None: all equal
    block: int | None = None
    seed: int = 0
    until: str = "all"

    def __post_init__(self):
        if self.mode not in MODES:
            raise UsageProblem(f"mix mode {self.mode!r}: expected one of {', '.join(MODES)}")
        if self.until not in UNTIL:
            raise UsageProblem(f"--until {self.until!r}: expected all or first")
        if self.weights is not None:
            self.weights = [float(weight) for weight in self.weights]
            if not self.weights or any(not weight > 0 or weight == float("inf") for weight in self.weights):
                raise UsageProblem(f"weights must be positive numbers, got {format_weights(self.weights)}")
        if self.block is not None:
            if self.mode != "interleave":
                raise UsageProblem("--block goes with --mode interleave")
            if self.block < 1:
                raise UsageProblem(f"--block must be at least 1, got {self.block}")
        if self.mode == "round-robin" and self.weights is not None:
            raise UsageProblem("round-robin takes one record from each input in turn: no weights (for blocks in "
                               "proportion to weights, use --mode interleave)")
        if self.mode == "interleave" and self.block is None and self.weights is not None \
                and any(not weight.is_integer() for weight in self.weights):
            raise UsageProblem(f"interleave takes blocks of whole records: weights {format_weights(self.weights)} "
                               f"are not whole numbers (or give --block)")

    def weights_for(self, count: int) -> list[float]:
        if self.weights is None:
            return [1.0] * count
        if len(self.weights) != count:
            raise UsageProblem(f"{len(self.weights)} weight(s) for {count} input(s): give one per input")
        return list(self.weights)

    def blocks_for(self, count: int) -> list[int]:
        """Items taken from each stream at its turn (round-robin: one)."""
        if self.mode == "round-robin":
            return [1] * count
        if self.block is not None:
            return [self.block] * count
        return [int(weight) for weight in self.weights_for(count)]


def parse_weights(text: str) -> list[float]:
    """`3,1` -> [3.0, 1.0]."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise UsageProblem(f"--weights {text!r}: expected numbers separated by commas, such as 3,1") from None


def format_weights(weights: Sequence[float]) -> str:
    return ",".join(f"{weight:g}" for weight in weights)


class Mixer:
    """The items of several iterables, mixed as `options` say (MixOptions, or its fields as
    keywords). Iterate it once. `taken[i]` counts the items taken from stream i, `ended[i]`
    says that stream i was found to have ended, `stopped_by` the stream whose end stopped an
    `until="first"` mix."""

    def __init__(self, streams: Sequence[Iterable], options: MixOptions | None = None, **fields):
        if options is not None and fields:
            raise TypeError("give MixOptions or its fields, not both")
        self.options = options if options is not None else MixOptions(**fields)
        if not streams:
            raise UsageProblem("nothing to mix: no input")
        self._streams = [iter(stream) for stream in streams]
        count = len(self._streams)
        self._weights = self.options.weights_for(count)
        self._blocks = self.options.blocks_for(count) if self.options.mode != "random" else None
        self._random = random.Random(self.options.seed)
        self.taken = [0] * count
        self.ended = [False] * count
        self.stopped_by: int | None = None
        self._turn = 0  # round-robin and interleave: the stream whose block is being taken
        self._in_block = 0  # items of that block taken so far
        self._to_skip = [0] * count  # after load_state_dict: items to drop from the start of each stream
        self._started = False

    # -- resuming ---------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Where the mix is, after the last item it yielded: plain JSON-able values."""
        version, internal, gauss = self._random.getstate()
        return {"version": STATE_VERSION, "mode": self.options.mode, "taken": list(self.taken),
                "ended": list(self.ended), "stopped_by": self.stopped_by, "turn": self._turn,
                "in_block": self._in_block, "random": [version, list(internal), gauss]}

    def load_state_dict(self, state: dict, *, skip_taken: bool = True) -> None:
        """Go on from `state` (of a Mixer over the same streams with the same options), before
        iterating. skip_taken: the streams were given from their start, so drop the items
        already taken from each; False when each stream was resumed at its own position."""
        if self._started:
            raise RuntimeError("load_state_dict before iterating the mix, not during")
        if state.get("version") != STATE_VERSION or state.get("mode") != self.options.mode:
            raise UsageProblem(f"a mix state of mode {state.get('mode')!r} (version {state.get('version')}) does not "
                               f"fit this {self.options.mode} mix")
        if len(state["taken"]) != len(self._streams):
            raise UsageProblem(f"a mix state of {len(state['taken'])} stream(s) for {len(self._streams)}")
        self.taken = list(state["taken"])
        self.ended = list(state["ended"])
        self.stopped_by = state["stopped_by"]
        self._turn, self._in_block = state["turn"], state["in_block"]
        version, internal, gauss = state["random"]
        self._random.setstate((version, tuple(internal), gauss))
        self._to_skip = list(self.taken) if skip_taken else [0] * len(self._streams)

    # -- mixing -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator:
        if self._started:
            raise RuntimeError("a Mixer is iterated once")
        self._started = True
        if self.stopped_by is not None:
            return iter(())
        return self._random_mix() if self.options.mode == "random" else self._blocks_mix()

    _END = object()

    def _pull(self, index: int):
        """The next item of stream `index`, or _END (and the stream marked ended)."""
        stream = self._streams[index]
        if self._to_skip[index]:
            skip, self._to_skip[index] = self._to_skip[index], 0
            if sum(1 for _ in itertools.islice(stream, skip)) < skip:
                raise UsageProblem(f"input {index + 1} has fewer records than the mix state says were taken "
                                   f"from it ({skip}): not the same input")
        item = next(stream, self._END)
        if item is self._END:
            self.ended[index] = True
            if self.options.until == "first":
                self.stopped_by = index
        else:
            self.taken[index] += 1
        return item

    def _random_mix(self) -> Iterator:
        weights, ended, draw, end = self._weights, self.ended, self._random.random, self._END
        while not all(ended):
            # The draw's thresholds over the streams still going, until one of them ends.
            live = [index for index in range(len(weights)) if not ended[index]]
            thresholds = list(itertools.accumulate(weights[index] for index in live))
            total, last = thresholds[-1], len(live) - 1
            while True:
                chosen = live[min(bisect.bisect_right(thresholds, draw() * total), last)]
                item = self._pull(chosen)
                if item is end:
                    break
                yield item
            if self.stopped_by is not None:
                return

    def _blocks_mix(self) -> Iterator:
        blocks, ended = self._blocks, self.ended
        while not all(ended):
            if ended[self._turn] or self._in_block >= blocks[self._turn]:
                self._next_turn()
                continue
            item = self._pull(self._turn)
            if item is self._END:
                if self.stopped_by is not None:
                    return
                continue
            self._in_block += 1
            if self._in_block >= blocks[self._turn]:
                self._next_turn()  # (now, so a state saved after this item starts the next block)
            yield item

    def _next_turn(self) -> None:
        self._turn = (self._turn + 1) % len(self._streams)
        self._in_block = 0


def mix(streams: Sequence[Iterable], **options) -> Iterator:
    """The items of `streams` mixed (MixOptions' fields as keywords): a Mixer's iteration."""
    return iter(Mixer(streams, **options))


if __name__ == "__main__":  # python -m any2dataset.mix
    from .commands.mix import main

    main()
