"""The all-in-one checks its arguments before any work, in its own names, guesses the list
format from the name as a2d-read does, and fails a run that saved nothing."""

import pytest

import any2dataset
from any2dataset.errors import NothingSucceeded, UsageProblem
from conftest import command_env

DOWNLOAD_ONLY = ["--disable_all_reencoding", "True", "--output_format", "webdataset", "--thread_count", "4"]


@pytest.fixture
def csv_list(http_server, tmp_path):
    path = tmp_path / "urls.csv"
    path.write_text("url,caption\n" + "".join(f"{http_server.url(f'checks/{i}.bin', size=200 + i)},c{i}\n"
                                              for i in range(4)))
    return path


def test_a_csv_list_without_input_format_is_read_as_csv(pipeline, csv_list, tmp_path):
    result = pipeline(f"any2dataset --url_list {csv_list} --output_folder out {' '.join(DOWNLOAD_ONLY)}")
    assert result.returncode == 0, result.stderr
    assert b"\n  success                   4 " in result.stderr, result.stderr
    assert b"warning" not in result.stderr


def test_a_format_the_name_contradicts_is_warned_about_and_a_run_with_no_sample_fails(pipeline, csv_list):
    result = pipeline(f"any2dataset --url_list {csv_list} --input_format txt --output_folder out "
                      f"{' '.join(DOWNLOAD_ONLY)}")
    assert b"any2dataset: warning: url_list " in result.stderr and b"looks like csv" in result.stderr
    assert result.returncode == 1, result.stderr
    assert result.stderr.rstrip().endswith(b"is input_format right for " + str(csv_list).encode() + b"?)")


@pytest.mark.parametrize("argument, value, named", [
    ("--output_format", "webdatset", b"'output_format'"),
    ("--resize_mode", "bordr", b"'resize_mode'"),
    ("--encode_format", "gif", b"'encode_format'"),
    ("--compute_hash", "sha3", b"compute_hash"),
])
def test_a_wrong_argument_stops_before_any_download(pipeline, http_server, csv_list, tmp_path, argument, value, named):
    before = len(http_server.requests_for_prefix("/checks/"))
    result = pipeline(f"any2dataset --url_list {csv_list} --output_folder out {argument} {value}")
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()  # one line, in the all-in-one's words (no stage's usage text)
    assert line.startswith(b"any2dataset: error: ") and named in line and b"Usage" not in line, line
    assert len(http_server.requests_for_prefix("/checks/")) == before
    assert not (tmp_path / "out").exists()


def test_a_missing_or_empty_list_is_named_before_any_work(pipeline, tmp_path):
    missing = pipeline("any2dataset --url_list nowhere.txt --output_folder out")
    assert missing.returncode == 2 and missing.stderr == b"any2dataset: error: nowhere.txt: no such file\n"
    (tmp_path / "empty.txt").write_bytes(b"")
    empty = pipeline("any2dataset --url_list empty.txt --output_folder out")
    assert empty.returncode == 1
    assert empty.stderr == b"any2dataset: error: url_list empty.txt: empty, nothing to download\n"
    (tmp_path / "header.csv").write_text("url,caption\n")
    header_only = pipeline(f"any2dataset --url_list header.csv --output_folder out {' '.join(DOWNLOAD_ONLY)}")
    assert header_only.returncode == 1 and b"gave no rows (input_format csv)" in header_only.stderr, header_only.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_download_raises_before_work_too(csv_list, tmp_path):
    with pytest.raises(UsageProblem, match="'output_format'"):
        any2dataset.download(url_list=str(csv_list), output_folder=str(tmp_path / "out"), output_format="webdatset")
    with pytest.raises(UsageProblem, match="no such file"):
        any2dataset.download(url_list=str(tmp_path / "none.csv"), output_folder=str(tmp_path / "out"))
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(NothingSucceeded):
        any2dataset.download(url_list=str(tmp_path / "empty.csv"), output_folder=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_missing_pillow_is_said_first_and_alone(pipeline, http_server, csv_list, tmp_path):
    blocker = tmp_path / "no_pillow" / "PIL"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('Pillow is not installed here')\n")
    env = command_env({"PYTHONPATH": f"{tmp_path / 'no_pillow'}:{command_env()['PYTHONPATH']}"})
    before = len(http_server.requests_for_prefix("/checks/"))
    result = pipeline(f"any2dataset --url_list {csv_list} --output_folder out", env=env)
    assert result.returncode == 1
    assert result.stderr == (b"any2dataset: error: image resizing needs Pillow: install it with "
                             b"pip install 'any2dataset[image]'\n")
    assert len(http_server.requests_for_prefix("/checks/")) == before


def test_pipe_form_prints_the_equivalent_pipeline_and_downloads_nothing(pipeline, http_server, csv_list, tmp_path):
    before = len(http_server.requests_for_prefix("/checks/"))
    result = pipeline(f"any2dataset --url_list {csv_list} --output_folder out --processes_count 2 --pipe-form")
    assert result.returncode == 0, result.stderr
    stages = result.stdout.decode().strip().split(" | ")
    assert [stage.split()[0] for stage in stages] == ["a2d-read", "a2d-shard", "a2d-fetch", "a2d-subsample",
                                                      "a2d-write"]
    assert "--skip-done out" in stages[1] and "-j 512 --retries 0 --source direct -w 2" in stages[2]
    video = pipeline(f"a2d-video2dataset --url_list {csv_list} --output_folder out --pipe-form")
    assert video.returncode == 0 and b"a2d-write --format files --number-sample-per-shard 1000 --like video2dataset" \
        in video.stdout, video.stderr
    assert len(http_server.requests_for_prefix("/checks/")) == before and not (tmp_path / "out").exists()
