"""What the test venvs (the real img2dataset, video2dataset, torch) share: one builder at a
time behind a file lock, and a pip step that skips the test with pip's reason when it fails."""

import contextlib
import fcntl
import subprocess
from pathlib import Path

import pytest

CACHE = Path.home() / ".cache" / "any2dataset-tests"


@contextlib.contextmanager
def building(name: str):
    """Held while the venv `name` is checked or built; the others wait (conftest.py's
    background build holds it first)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def install(step: list[str], what: str) -> None:
    """Run one build step; pytest.skip naming `what` and pip's last words if it fails."""
    try:
        done = subprocess.run(step, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"cannot build a venv with {what}: {error}")
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        pytest.skip(f"cannot build a venv with {what} ({' '.join(step[:4])} failed: {' / '.join(tail)})")
