"""stats.histogram alone: the log-scale bins, exact totals, percentile estimates within 25%."""

import math
import random

import pytest

from any2dataset.stats.histogram import SUB_BINS, SizeHistogram, _bin, _bin_range


def nearest_rank(sorted_values, q):
    return sorted_values[max(1, math.ceil(q * len(sorted_values))) - 1]


def filled(sizes):
    histogram = SizeHistogram()
    for size in sizes:
        histogram.add(size)
    return histogram


def test_percentiles_stay_within_a_quarter_on_a_wide_spread():
    chooser = random.Random(1)
    sizes = sorted(int(math.exp(chooser.uniform(0, math.log(10**10)))) for _ in range(20000))
    histogram = filled(sizes)
    summary = histogram.summary()
    assert summary["count"] == len(sizes) and histogram.total == sum(sizes)
    assert summary["min"] == sizes[0] and summary["max"] == sizes[-1]
    assert summary["mean"] == pytest.approx(sum(sizes) / len(sizes), abs=0.05)
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        exact = nearest_rank(sizes, q)
        assert abs(summary[name] - exact) <= 0.25 * exact, (name, summary[name], exact)
    assert len(histogram.bins) < 4 * 36


def test_bins_tile_the_sizes_without_gaps_and_hold_their_sizes():
    for index in range(SUB_BINS * 63):
        low, high = _bin_range(index)
        assert _bin_range(index + 1)[0] == high  # contiguous
        assert _bin(low) == index and _bin(high - 1) == index
        assert high - low <= max(1, low // SUB_BINS)  # a quarter octave at most: the 25% bound
    assert [_bin(size) for size in range(SUB_BINS)] == list(range(SUB_BINS))  # small sizes exact
    assert _bin((1 << 63) - 1) < 252


def test_small_sizes_are_exact():
    histogram = filled([0, 1, 1, 2, 3, 3, 3])
    assert histogram.summary() == {"count": 7, "min": 0, "p50": 2, "p90": 3, "p99": 3, "max": 3, "mean": 1.9}


def test_empty_histogram_has_no_figures():
    histogram = SizeHistogram()
    assert histogram.summary() == {"count": 0, "min": None, "p50": None, "p90": None, "p99": None,
                                   "max": None, "mean": None}
    assert histogram.octaves() == []


def test_merge_is_the_same_as_adding_everything_to_one():
    chooser = random.Random(2)
    first = [chooser.randrange(10**7) for _ in range(500)]
    second = [chooser.randrange(100) for _ in range(300)]
    merged = filled(first)
    merged.merge(filled(second))
    merged.merge(SizeHistogram())  # an empty one changes nothing
    whole = filled(first + second)
    assert (merged.bins, merged.count, merged.total, merged.min, merged.max) == \
        (whole.bins, whole.count, whole.total, whole.min, whole.max)
    assert merged.summary() == whole.summary()


def test_octaves_are_power_of_two_bins_with_exact_counts():
    sizes = [0, 1, 2, 3, 4, 7, 8, 1000, 1023, 1024, 5000]
    octaves = filled(sizes).octaves()
    assert octaves[0][:2] == [0, 1]
    for low, high, count in octaves:
        assert high == max(1, 2 * low) and count == sum(1 for s in sizes if low <= s < high)
    assert sum(count for _, _, count in octaves) == len(sizes)
