import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from servers import FaultServer, S3Server  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "bin"
# Subprocesses (python -m any2dataset.X) import this checkout, not whichever copy pip installed.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


@pytest.fixture(scope="session")
def http_server():
    server = FaultServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """An s3fs filesystem on the moto server, with a fresh bucket `test-bucket`."""
    import fsspec
    import s3fs

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": s3_server.endpoint})
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(endpoint_url=s3_server.endpoint, key="testing", secret="testing")
    if not fs.exists("test-bucket"):
        fs.mkdir("test-bucket")
    yield fs
    fs.rm("test-bucket", recursive=True)
    s3fs.S3FileSystem.clear_instance_cache()


def command_env(extra: dict | None = None) -> dict:
    """Environment for real subprocess pipelines: this checkout's bin/ first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{os.path.dirname(sys.executable)}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONWARNINGS", None)
    env.update(extra or {})
    return env


def default_signals() -> None:
    """preexec_fn for a child that a test interrupts: Ctrl-C's default action, even when the
    suite itself runs with SIGINT ignored (`pytest &` in a script, nohup), which children inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_pipeline(script: str, cwd, *, env: dict | None = None, timeout: float = 60, input: bytes | None = None):
    """Run a real shell pipeline (bash -o pipefail) of our commands; returns CompletedProcess."""
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", script], cwd=cwd, env=command_env(env), capture_output=True,
        timeout=timeout, input=input,
    )


@pytest.fixture
def pipeline(tmp_path):
    def run(script: str, **kwargs):
        return run_pipeline(script, kwargs.pop("cwd", tmp_path), **kwargs)

    return run


@pytest.fixture
def cli():
    """Run a command in-process; stdout (records) and stderr (messages) kept apart."""

    def invoke(command, args, input=None):
        runner = CliRunner()
        return runner.invoke(command, args, input=input, catch_exceptions=False)

    return invoke


# Differential tests compare with the real tools, installed in venvs that take minutes to build
# on a fresh machine: their builds start in the background as soon as such a test is collected,
# and run while the other tests do (each test waits on its venv's lock, tests/*_env.py).
PREPARED_BY = {"test_img2dataset_": "img2dataset_env.py", "test_video2dataset_e2e": "video2dataset_env.py",
               "test_loader_torch": "torch_env.py", "test_subsample_models_torch": "torch_env.py"}


def pytest_collection_finish(session):
    scripts = {script for item in session.items for prefix, script in PREPARED_BY.items()
               if item.path.name.startswith(prefix)}
    for script in sorted(scripts):
        log = Path.home() / ".cache" / "any2dataset-tests" / f"{script}.prepare.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as out:
            subprocess.Popen([sys.executable, str(Path(__file__).parent / script), "--prepare"], stdout=out,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
