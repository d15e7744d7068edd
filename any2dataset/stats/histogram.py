"""Sizes in a fixed log-scale histogram: memory stays flat however many sizes it sees.

Count, total, min, max and mean are exact; percentiles are estimates. Quarter-octave bins: a
percentile estimate lies in the same bin as the exact value, so it is off by less than 25%
(sizes under 4 bytes are exact). At most 252 bins for any int64 size.
"""

import math
from collections import Counter

SUB_BINS = 4  # _bin's bit arithmetic assumes 4: the two bits after the leading one


def _bin(size: int) -> int:
    if size < SUB_BINS:
        return max(size, 0)
    bits = size.bit_length()
    return SUB_BINS * (bits - 2) + ((size >> (bits - 3)) & (SUB_BINS - 1))


def _bin_range(index: int) -> tuple[int, int]:
    """[low, high) of a bin."""
    if index < SUB_BINS:
        return index, index + 1
    bits, sub = index // SUB_BINS + 2, index % SUB_BINS
    return (SUB_BINS + sub) << (bits - 3), (SUB_BINS + sub + 1) << (bits - 3)


class SizeHistogram:
    """Sizes in log-scale bins: exact count, total, min, max and mean; estimated percentiles."""

    def __init__(self):
        self.bins: Counter = Counter()
        self.count = 0
        self.total = 0
        self.min: int | None = None
        self.max: int | None = None

    def add(self, size: int) -> None:
        index = _bin(size)
        bins = self.bins
        bins[index] = bins.get(index, 0) + 1  # (a Counter's += costs twice as much, per record)
        self.count += 1
        self.total += size
        if self.min is None:
            self.min = self.max = size
        elif size < self.min:
            self.min = size
        elif size > self.max:
            self.max = size

    def merge(self, other: "SizeHistogram") -> None:
        if not other.count:
            return
        self.bins.update(other.bins)
        self.count += other.count
        self.total += other.total
        self.min = other.min if self.min is None else min(self.min, other.min)
        self.max = other.max if self.max is None else max(self.max, other.max)

    def percentile(self, q: float) -> int | None:
        """The nearest-rank q-quantile (0 < q <= 1), interpolated inside its bin."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index in sorted(self.bins):
            in_bin = self.bins[index]
            if seen + in_bin >= rank:
                low, high = _bin_range(index)
                estimate = low + (high - low) * (rank - seen - 0.5) / in_bin
                return int(min(max(estimate, self.min), self.max))
            seen += in_bin
        return self.max

    def summary(self) -> dict:
        return {
            "count": self.count,
            "min": self.min,
            "p50": self.percentile(0.5),
            "p90": self.percentile(0.9),
            "p99": self.percentile(0.99),
            "max": self.max,
            "mean": round(self.total / self.count, 1) if self.count else None,
        }

    def octaves(self) -> list[list[int]]:
        """[[low, high, count], ...] in power-of-two bins ([0, 1) first), for charts."""
        merged: Counter = Counter()
        for index, count in self.bins.items():
            low = _bin_range(index)[0]
            merged[low.bit_length()] += count
        return [[0 if k == 0 else 1 << (k - 1), 1 << k, merged[k]] for k in sorted(merged)]
