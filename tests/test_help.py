"""Help, man pages and hints: what a user reads when starting out or when something is off."""

import base64
import io
import os
import re
import shutil
import subprocess
import sys

import orjson
import pytest

from conftest import ROOT

COMMANDS = ["a2d-read", "a2d-shard", "a2d-fetch", "a2d-subsample", "a2d-write", "a2d-stats", "a2d-mix",
            "any2dataset", "a2d-video2dataset"]


def test_pip_installs_the_man_pages(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "wheel"),
                            str(ROOT)], capture_output=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = (tmp_path / "wheel").glob("*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "env")], check=True)
    clean = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}  # (else: "already installed")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(tmp_path / "env" / "bin" / "python"),
                                "install", "-q", "--no-deps", str(wheel)], capture_output=True, timeout=300, env=clean)
    assert installed.returncode == 0, installed.stderr[-2000:]
    pages = tmp_path / "env" / "share" / "man"
    assert sorted(p.name for p in (pages / "man1").iterdir()) == sorted(f"{c}.1" for c in COMMANDS)
    assert (pages / "man5" / "a2d-record.5").read_bytes() == (ROOT / "man" / "a2d-record.5").read_bytes()
    if shutil.which("man"):  # man finds share/man beside the environment's bin/ on PATH
        found = subprocess.run(["man", "-w", "a2d-fetch"], capture_output=True,
                               env={"PATH": f"{tmp_path / 'env' / 'bin'}:/usr/bin:/bin"})
        assert found.stdout.strip() == str(pages / "man1" / "a2d-fetch.1").encode(), found.stderr


def test_every_page_named_in_see_also_exists():
    pages = {p.stem for p in (ROOT / "man").iterdir()}
    for page in (ROOT / "man").iterdir():
        text = page.read_text()
        named = re.findall(r"([a-z0-9\\-]+)\((\d)\)", text[text.index(".SH SEE ALSO"):])
        assert named, page.name
        for name, section in named:
            assert name.replace("\\-", "-") in pages and (ROOT / "man" / f"{name.replace(chr(92) + '-', '-')}."
                                                          f"{section}").exists(), (page.name, name)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_one_bracket_per_option(pipeline, command):
    result = pipeline(f"{command} --help")
    assert result.returncode == 0
    text = re.sub(r"\s+", " ", result.stdout.decode())
    doubled = re.search(r".{0,60}(\[default: [^\]]*\] \[|\] \[(x|[0-9-]+<))", text)
    assert doubled is None, doubled.group()


@pytest.mark.parametrize("command", ["a2d-fetch", "a2d-shard", "a2d-subsample -w 1", "a2d-write out"])
def test_a_url_list_given_to_a_record_stage_gets_a_hint(pipeline, tmp_path, command):
    (tmp_path / "urls.txt").write_text("http://127.0.0.1:9/a.jpg\n")
    result = pipeline(f"{command} urls.txt")
    assert result.returncode == 3
    assert b"urls.txt:1: not valid JSON" in result.stderr and b"run a2d-read first" in result.stderr


def test_subsample_writes_to_a_file_with_o(pipeline, tmp_path):
    record = orjson.dumps({"key": "0", "status": "success", "files": {"bin": "AAAA"}}) + b"\n"
    result = pipeline("a2d-subsample -w 1 -o out.jsonl", input=record)
    assert result.returncode == 0 and result.stdout == b""
    assert orjson.loads((tmp_path / "out.jsonl").read_bytes())["key"] == "0"


def test_pillow_warnings_about_odd_files_stay_off_stderr(pipeline):
    Image = pytest.importorskip("PIL.Image")
    out = io.BytesIO()
    # A JPEG whose EXIF block is cut short: Pillow warns "Corrupt EXIF data" and decodes it anyway.
    Image.new("RGB", (20, 20), (255, 0, 0)).save(out, "JPEG", exif=b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff")
    record = orjson.dumps({"key": "0", "status": "success",
                           "files": {"jpg": base64.b64encode(out.getvalue()).decode()}})
    for workers in ("1", "2"):
        result = pipeline(f"a2d-subsample -w {workers} --image-size 8", input=record + b"\n")
        assert result.returncode == 0
        assert orjson.loads(result.stdout)["status"] == "success"
        assert result.stderr == b"a2d-subsample: 1 records read, 1 written: success 1\n"


def test_a2d_read_says_it_waits_when_standard_input_is_a_terminal(tmp_path):
    import pty

    from conftest import command_env

    main, terminal = pty.openpty()
    process = subprocess.Popen(["a2d-read"], stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=command_env())
    os.close(terminal)
    try:
        os.write(main, b"http://127.0.0.1:9/a.jpg\n\x04")  # a line typed, then Ctrl-D
        stdout, stderr = process.communicate(timeout=30)
    finally:
        os.close(main)
    assert stderr.startswith(b"a2d-read: warning: waiting for a list of URLs, one per line, on standard input"), stderr
    assert orjson.loads(stdout)["url"] == "http://127.0.0.1:9/a.jpg"
