"""Behaviour every command shares: help, version, man page, empty input, bad input, exit codes."""

import re

import orjson
import pytest
import tomllib

from any2dataset.commands import all_in_one as all_in_one_command
from any2dataset.commands import fetch as fetch_command
from any2dataset.commands import mix as mix_command
from any2dataset.commands import read as read_command
from any2dataset.commands import shard as shard_command
from any2dataset.commands import stats as stats_command
from any2dataset.commands import subsample as subsample_command
from any2dataset.commands import video2dataset as video2dataset_command
from any2dataset.commands import write as write_command
from conftest import ROOT

COMMANDS = {
    "a2d-read": read_command.main,
    "a2d-shard": shard_command.main,
    "a2d-fetch": fetch_command.main,
    "a2d-write": write_command.main,
    "a2d-subsample": subsample_command.main,
    "a2d-stats": stats_command.main,
    "a2d-mix": mix_command.main,
    "any2dataset": all_in_one_command.main,
    "a2d-video2dataset": video2dataset_command.main,
}
# commands that read records
RECORD_COMMANDS = ["a2d-shard", "a2d-fetch", "a2d-subsample", "a2d-write", "a2d-stats", "a2d-mix"]


def args_for(name, tmp_path):
    if name == "a2d-stats":
        return ["--tee"]  # records out, the report on stderr, as the other filters
    return [str(tmp_path / "out")] if name == "a2d-write" else []


def test_every_registered_script_is_tested_here():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == set(COMMANDS)
    for name in scripts:
        assert (ROOT / "bin" / name).exists(), f"no bin/{name} launcher"


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_description_example_and_exit_codes(cli, name):
    for flag in ("-h", "--help"):
        result = cli(COMMANDS[name], [flag])
        assert result.exit_code == 0
        assert "Example:" in result.stdout and name in result.stdout
        assert "Exit codes:" in result.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_version(cli, name):
    from any2dataset import __version__

    result = cli(COMMANDS[name], ["--version"])
    assert result.exit_code == 0 and __version__ in result.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_man_page_documents_every_option_and_the_exit_codes(name):
    import click

    page = (ROOT / "man" / f"{name}.1").read_text()
    command = COMMANDS[name]
    options = [opt for param in command.get_params(click.Context(command)) for opt in param.opts
               if isinstance(param, click.Option)]
    assert "--help" in options and "--version" in options
    for option in options:
        assert option.replace("-", r"\-") in page, f"man/{name}.1 does not document {option}"
    for code in ("0", "1", "2", "3", "4", "130"):
        assert re.search(rf"^\.IP {code}\b", page, re.M), f"exit code {code} missing"


def test_generated_man_pages_are_up_to_date():
    import subprocess
    import sys

    check = subprocess.run([sys.executable, str(ROOT / "docs" / "make_man.py"), "--check"], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stderr


def test_record_format_man_page_lists_every_reserved_field_and_error_kind():
    from any2dataset import record as rec

    page = (ROOT / "man" / "a2d-record.5").read_text()
    plain = re.sub(r"\\f[BIRP]", "", page).replace("\\-", "-")
    for name in [*rec.RESERVED, *rec.ERROR_KINDS, *rec.STATUSES]:
        assert re.search(rf"\b{re.escape(name)}\b", plain), f"man/a2d-record.5 never names {name}"


@pytest.mark.parametrize("name", RECORD_COMMANDS)
def test_empty_input_is_fine(cli, name, tmp_path):
    result = cli(COMMANDS[name], args_for(name, tmp_path), input=b"")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("name", RECORD_COMMANDS)
@pytest.mark.parametrize(
    "lines, line_number, message",
    [
        (b'{"url": "data:,"}\n{oops\n', 2, "not valid JSON"),
        (b'[]\n', 1, "expected a JSON object, got an array"),
        (b'\n{"url": "data:,"}\n{"url": ["x"]}\n', 3, "field url must be a string, got an array"),
        (b'{"status": "done"}\n', 1, "unknown status 'done'"),
    ],
)
def test_bad_input_gives_one_located_line_and_exit_3(cli, name, tmp_path, lines, line_number, message):
    result = cli(COMMANDS[name], args_for(name, tmp_path), input=lines)
    assert result.exit_code == 3
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == [f"{name}: error: <stdin>:{line_number}: " + errors[0].split(f"{line_number}: ", 1)[1]]
    assert message in errors[0]
    assert "Traceback" not in result.stderr


def test_invalid_base64_names_the_payload(cli, tmp_path):
    lines = b'{"url": "u", "status": "success", "files": {"jpg": "AAAA"}}\n' \
            b'{"url": "v", "status": "success", "files": {"jpg": "@@not base64"}}\n'
    result = cli(write_command.main, [str(tmp_path / "out")], input=lines)
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines()[-1] == "a2d-write: error: <stdin>:2: invalid base64 in files.jpg"
    assert not any((tmp_path / "out").iterdir())  # the unfinished shard left nothing behind


def test_errors_name_the_input_file(cli, tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_bytes(b'{"url": "x"}\n{"url": "y", "shard": "zero"}\n')
    result = cli(write_command.main, [str(tmp_path / "out"), str(path)])
    assert result.exit_code == 3
    assert f"a2d-write: error: {path}:2: field shard must be an integer" in result.stderr


@pytest.mark.parametrize("name", RECORD_COMMANDS)
def test_on_error_skip_goes_on_and_reports_the_count(cli, name, tmp_path):
    lines = b'{"url": "data:,"}\nnot json\n{"url": 3}\n{"url": "ftp://127.0.0.1/x"}\n'
    result = cli(COMMANDS[name], [*args_for(name, tmp_path), "--on-error", "skip"], input=lines)
    assert result.exit_code == 0, result.stderr
    assert "skipped 2 bad input line(s); first: <stdin>:2: not valid JSON" in result.stderr
    if name == "a2d-fetch":
        assert len(result.stdout.splitlines()) == 2


def test_usage_errors_exit_2(cli, tmp_path):
    result = cli(fetch_command.main, ["-j", "0"], input=b"")
    assert result.exit_code == 2
    result = cli(read_command.main, [str(tmp_path / "missing.csv")])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"a2d-read: error: {tmp_path / 'missing.csv'}: no such file"


def test_debug_shows_the_traceback(pipeline, tmp_path):
    plain = pipeline("echo '[1]' | a2d-fetch")
    debug = pipeline("echo '[1]' | a2d-fetch --debug")
    assert plain.returncode == 3 and b"Traceback" not in plain.stderr
    assert b"Traceback" in debug.stderr and b"BadInput" in debug.stderr


@pytest.mark.parametrize("name", COMMANDS)
def test_python_dash_m_runs_the_command(pipeline, name):
    # (any2dataset.video2dataset is the function, as `from video2dataset import video2dataset`)
    module = {"any2dataset": "any2dataset", "a2d-video2dataset": "any2dataset.commands.video2dataset"}.get(
        name, f"any2dataset.{name.removeprefix('a2d-')}")
    result = pipeline(f"python -m {module} --help")
    assert result.returncode == 0 and b"Example:" in result.stdout


def test_progress_goes_to_stderr_and_stdout_keeps_only_records(cli):
    lines = b"".join(b'{"url": "ftp://127.0.0.1/%d"}\n' % i for i in range(3))
    result = cli(fetch_command.main, ["--progress"], input=lines)
    assert result.exit_code == 0
    assert "a2d-fetch" in result.stderr and "rec" in result.stderr  # the tqdm bar
    assert [orjson.loads(line)["error_kind"] for line in result.stdout.splitlines()] == ["scheme_denied"] * 3
    quiet = cli(fetch_command.main, ["--quiet"], input=lines)
    assert quiet.stderr == "" and len(quiet.stdout.splitlines()) == 3


@pytest.mark.parametrize("name", RECORD_COMMANDS)
def test_a_missing_input_file_is_a_usage_error(cli, tmp_path, name):
    missing = str(tmp_path / "nonexistent.jsonl")
    result = cli(COMMANDS[name], [*args_for(name, tmp_path), missing])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(f"{name}: error: {missing}: no such file")
