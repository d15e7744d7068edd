"""Mixing streams: any2dataset.mix.Mixer (proportions, exact orders, ends, resume) and a2d-mix."""

import itertools
import json

import orjson
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from any2dataset import record as rec
from any2dataset.commands import mix as mix_command
from any2dataset.errors import UsageProblem
from any2dataset.mix import Mixer, MixOptions, mix, parse_weights


def tagged(name, count=None):
    """`a0, a1, ...`: a stream whose items say where they came from and their place in it."""
    numbers = itertools.count() if count is None else range(count)
    return (f"{name}{i}" for i in numbers)


def streams(*lengths):
    return [tagged(chr(ord("a") + i), length) for i, length in enumerate(lengths)]


# -- the library ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_random_mode_follows_the_weights(seed):
    taken = list(itertools.islice(mix(streams(None, None), weights=[3, 1], seed=seed), 4000))
    a = sum(item.startswith("a") for item in taken)
    b = len(taken) - a
    chi_square = (a - 3000) ** 2 / 3000 + (b - 1000) ** 2 / 1000
    assert chi_square < 10.83, (a, b)  # p = 0.001 for one degree of freedom
    # each stream's items come out in its own order
    assert [item for item in taken if item.startswith("a")] == [f"a{i}" for i in range(a)]


def test_equal_weights_by_default():
    taken = list(itertools.islice(mix(streams(None, None, None), seed=2), 3000))
    counts = [sum(item.startswith(name) for item in taken) for name in "abc"]
    assert all(abs(count - 1000) < 120 for count in counts), counts


def test_random_mode_is_reproducible_for_a_seed_and_differs_for_another():
    def order(seed):
        return list(mix(streams(300, 100), weights=[3, 1], seed=seed))

    assert order(7) == order(7)
    assert order(7) != order(8)
    assert sorted(order(7)) == sorted([f"a{i}" for i in range(300)] + [f"b{i}" for i in range(100)])


def test_random_mode_until_all_gives_every_item_once_and_goes_on_when_one_ends():
    mixer = Mixer(streams(10, 1000), weights=[1, 1], seed=0)
    taken = list(mixer)
    assert sorted(taken) == sorted([f"a{i}" for i in range(10)] + [f"b{i}" for i in range(1000)])
    assert taken[-500:] == [f"b{i}" for i in range(500, 1000)]  # a ended long before: only b is left
    assert mixer.taken == [10, 1000] and mixer.ended == [True, True] and mixer.stopped_by is None


def test_random_mode_until_first_stops_when_the_first_stream_ends():
    mixer = Mixer(streams(10, 1000), weights=[1, 1], seed=0, until="first")
    taken = list(mixer)
    assert [item for item in taken if item.startswith("a")] == [f"a{i}" for i in range(10)]
    assert 10 < len(taken) < 100  # b about as often as a, until a was found empty
    assert mixer.stopped_by == 0 and mixer.ended == [True, False] and mixer.taken == [10, len(taken) - 10]


def test_round_robin_exact_order():
    assert list(mix(streams(3, 1, 2), mode="round-robin")) == ["a0", "b0", "c0", "a1", "c1", "a2"]
    assert list(mix(streams(3, 1, 2), mode="round-robin", until="first")) == ["a0", "b0", "c0", "a1"]


def test_interleave_blocks_from_the_weights_or_block():
    assert list(mix(streams(5, 3), mode="interleave", weights=[2, 1])) == \
        ["a0", "a1", "b0", "a2", "a3", "b1", "a4", "b2"]
    assert list(mix(streams(4, 5), mode="interleave", block=3)) == \
        ["a0", "a1", "a2", "b0", "b1", "b2", "a3", "b3", "b4"]
    # until first: the mix stops at the first stream found ended, in the middle of a block
    assert list(mix(streams(4, 5), mode="interleave", block=3, until="first")) == \
        ["a0", "a1", "a2", "b0", "b1", "b2", "a3"]
    assert list(mix(streams(2, 2), mode="interleave")) == ["a0", "b0", "a1", "b1"]  # no weights: blocks of 1


def test_a_stream_is_read_only_when_its_turn_comes():
    pulled = []

    def watched(name, count):
        for item in tagged(name, count):
            pulled.append(item)
            yield item

    mixer = Mixer([watched("a", 1), watched("b", 5)], mode="round-robin", until="first")
    assert list(mixer) == ["a0", "b0"]
    assert pulled == ["a0", "b0"]  # b was not read past what the mix took


MODES = [dict(mode="random", weights=[3, 1], seed=5), dict(mode="random", weights=[1, 2, 1], seed=1),
         dict(mode="round-robin"), dict(mode="interleave", weights=[3, 1, 2]), dict(mode="interleave", block=4)]
LENGTHS = (40, 7, 25)


@pytest.mark.parametrize("until", ["all", "first"])
@pytest.mark.parametrize("options", MODES, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_resuming_from_a_state_dict_gives_exactly_the_rest(options, until):
    count = len(options.get("weights", LENGTHS))
    lengths = LENGTHS[:count]
    whole = list(mix(streams(*lengths), **options, until=until))
    assert len(whole) > 10
    for stop in [0, 1, 5, len(whole) // 2, len(whole) - 1, len(whole)]:
        first = Mixer(streams(*lengths), **options, until=until)
        head = list(itertools.islice(first, stop))
        state = json.loads(json.dumps(first.state_dict()))  # it survives a checkpoint file
        second = Mixer(streams(*lengths), **options, until=until)
        second.load_state_dict(state)
        assert head + list(second) == whole, stop
        assert second.taken == [sum(item[0] == name for item in whole) for name in "abc"[:count]]


def test_resuming_streams_that_were_resumed_themselves():
    whole = list(mix(streams(30, 30), weights=[2, 1], seed=3))
    first = Mixer(streams(30, 30), weights=[2, 1], seed=3)
    head = list(itertools.islice(first, 20))
    state = first.state_dict()
    positioned = [itertools.islice(tagged(name, 30), taken, None) for name, taken in zip("ab", state["taken"])]
    second = Mixer(positioned, weights=[2, 1], seed=3)
    second.load_state_dict(state, skip_taken=False)
    assert head + list(second) == whole


def test_a_state_that_does_not_fit_is_refused():
    state = Mixer(streams(3, 3), mode="round-robin").state_dict()
    with pytest.raises(UsageProblem, match="does not fit"):
        Mixer(streams(3, 3), mode="interleave").load_state_dict(state)
    with pytest.raises(UsageProblem, match="2 stream"):
        Mixer(streams(3, 3, 3), mode="round-robin").load_state_dict(state)
    shorter = Mixer(streams(3, 3), mode="round-robin")
    list(itertools.islice(shorter, 5))
    resumed = Mixer(streams(3, 1), mode="round-robin")
    resumed.load_state_dict(shorter.state_dict())
    with pytest.raises(UsageProblem, match="fewer records"):
        list(resumed)


@pytest.mark.parametrize("options, message", [
    (dict(mode="round-robin", weights=[1, 2]), "no weights"),
    (dict(mode="interleave", weights=[1.5, 1]), "whole numbers"),
    (dict(mode="random", block=3), "--block goes with --mode interleave"),
    (dict(weights=[1, 0]), "positive"),
    (dict(weights=[1, float("nan")]), "positive"),
    (dict(mode="shuffle"), "mix mode"),
    (dict(until="last"), "--until"),
])
def test_options_that_cannot_work_are_usage_problems(options, message):
    with pytest.raises(UsageProblem, match=message):
        MixOptions(**options)


def test_one_weight_per_stream_and_weights_parse():
    with pytest.raises(UsageProblem, match="3 weight"):
        Mixer(streams(1, 1), weights=[1, 2, 3])
    assert parse_weights("3,1") == [3.0, 1.0] and parse_weights("0.5, 2") == [0.5, 2.0]
    with pytest.raises(UsageProblem, match="numbers separated by commas"):
        parse_weights("3:1")


# -- the command ------------------------------------------------------------------------------

def write_records(path, name, count, spacing=b""):
    with open(path, "wb") as out:
        for i in range(count):
            out.write(rec.dumps({"url": f"http://x/{name}{i}", "caption": f"{name} {i}", "status": "success",
                                 "files": {"bin": f"{name}{i}".encode()}}).replace(b",", b"," + spacing))
    return path


def test_command_passes_lines_through_and_summarises(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = write_records(tmp_path / "a.jsonl", "a", 300, spacing=b"  ")  # odd spacing: kept byte for byte
    b = write_records(tmp_path / "b.jsonl", "b", 100)
    result = cli(mix_command.main, ["--weights", "3,1", "--seed", "4", "a.jsonl", "b.jsonl"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout_bytes.splitlines(keepends=True)
    a_lines, b_lines = (path.read_bytes().splitlines(keepends=True) for path in (a, b))
    assert sorted(lines) == sorted(a_lines + b_lines)
    expected = list(mix([iter(a_lines), iter(b_lines)], weights=[3, 1], seed=4))
    assert lines == expected  # the library's order
    assert result.stderr == "a2d-mix: 400 records written: 300 from a.jsonl (ended), 100 from b.jsonl (ended)\n"
    again = cli(mix_command.main, ["--weights", "3,1", "--seed", "4", "a.jsonl", "b.jsonl"])
    other = cli(mix_command.main, ["--weights", "3,1", "--seed", "5", "a.jsonl", "b.jsonl"])
    assert again.stdout_bytes == result.stdout_bytes != other.stdout_bytes


def test_command_until_first_and_output_file(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_records(tmp_path / "a.jsonl", "a", 5)
    write_records(tmp_path / "b.jsonl", "b", 2)
    result = cli(mix_command.main, ["--mode", "round-robin", "--until", "first", "-o", "out.jsonl", "a.jsonl",
                                    "b.jsonl"])
    assert result.exit_code == 0 and result.stdout_bytes == b""
    urls = [orjson.loads(line)["url"] for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert urls == ["http://x/a0", "http://x/b0", "http://x/a1", "http://x/b1", "http://x/a2"]
    assert "3 from a.jsonl, 2 from b.jsonl (ended); stopped when b.jsonl ended (--until first)" in result.stderr


def test_pipe_into_a2d_write_reads_back_with_webdataset_and_pyarrow(pipeline, tmp_path):
    write_records(tmp_path / "a.jsonl", "a", 30)
    write_records(tmp_path / "b.jsonl", "b", 10)
    result = pipeline("cat b.jsonl | a2d-mix --mode interleave --weights 3,1 a.jsonl - | tee mixed.jsonl "
                      "| a2d-write --number-sample-per-shard 25 out/")
    assert result.returncode == 0, result.stderr
    assert b"a2d-mix: 40 records written: 30 from a.jsonl (ended), 10 from <stdin> (ended)" in result.stderr
    order = [f"a{i}" for i in range(30)]
    expected = [item for block in range(10) for item in order[3 * block:3 * block + 3] + [f"b{block}"]]
    samples = list(wds.WebDataset(str(tmp_path / "out" / "0000{0..1}.tar"), shardshuffle=False))
    assert [sample["bin"].decode() for sample in samples] == expected
    captions = pq.read_table(tmp_path / "out" / "00000.parquet").column("caption").to_pylist()
    assert sorted(captions) == sorted(item[0] + " " + item[1:] for item in expected[:25])


def test_bad_input_names_file_and_line(pipeline, tmp_path):
    write_records(tmp_path / "a.jsonl", "a", 3)
    (tmp_path / "b.jsonl").write_bytes(b'{"url": "x"}\n{oops\n')
    result = pipeline("a2d-mix --mode round-robin a.jsonl b.jsonl")
    assert result.returncode == 3
    [message] = result.stderr.splitlines()  # one line, naming the file and line
    assert message.startswith(b"a2d-mix: error: b.jsonl:2: not valid JSON"), result.stderr
    *records, abort = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(records) == 3 and orjson.loads(abort)[rec.ABORT].startswith("a2d-mix: error: b.jsonl:2:")


def test_an_upstream_abort_line_stops_the_mix_and_is_passed_on(pipeline, tmp_path):
    write_records(tmp_path / "a.jsonl", "a", 3)
    (tmp_path / "b.jsonl").write_bytes(b'{"url": "x"}\n{"a2d_abort": "a2d-fetch: error: disk full"}\n')
    result = pipeline("a2d-mix --mode round-robin a.jsonl b.jsonl")
    assert result.returncode == 5
    assert b"a stage before this one failed" in result.stderr
    assert orjson.loads(result.stdout.splitlines()[-1]) == {rec.ABORT: "a2d-fetch: error: disk full"}


def test_into_head_ends_quietly(pipeline, tmp_path):
    write_records(tmp_path / "a.jsonl", "a", 50000)
    write_records(tmp_path / "b.jsonl", "b", 50000)
    result = pipeline("a2d-mix a.jsonl b.jsonl | head -1")
    assert result.returncode == 0 and result.stderr == b""
    assert len(result.stdout.splitlines()) == 1


def test_stdin_at_most_once(cli):
    result = cli(mix_command.main, ["-", "-"], input=b"")
    assert result.exit_code == 2 and "standard input (-) can be mixed in only once" in result.stderr


def test_weights_must_match_the_inputs(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_records(tmp_path / "a.jsonl", "a", 1)
    result = cli(mix_command.main, ["--weights", "3,1", "a.jsonl"])
    assert result.exit_code == 2 and "2 weight(s) for 1 input(s)" in result.stderr
