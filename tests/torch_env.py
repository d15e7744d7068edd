"""torch (CPU build) in a venv of its own, for the loader's DataLoader test.

The CPU wheel (~550 MB) comes from PyTorch's own index; PyPI's default wheel pulls 2 GB of
CUDA libraries. The venv sees the system's site-packages (any2dataset's dependencies), so
only torch is installed there. `find_or_build_venv()` reuses $A2D_TORCH_VENV or
~/.cache/any2dataset-tests/torch-venv, builds it when missing (conftest.py starts that in
the background, nice'd, when the test is collected; a file lock makes the test wait), and
calls pytest.skip with the reason when pip cannot.
"""

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

CACHE = Path.home() / ".cache" / "any2dataset-tests"
INDEX = "https://download.pytorch.org/whl/cpu"


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _works(venv: Path) -> bool:
    if not _python(venv).exists():
        return False
    return subprocess.run([str(_python(venv)), "-c", "import torch.utils.data"], capture_output=True,
                          timeout=300).returncode == 0


def find_or_build_venv() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "torch-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        given = os.environ.get("A2D_TORCH_VENV")
        venv = Path(given) if given else CACHE / "torch-venv"
        if _works(venv):
            return venv
        for step in ([sys.executable, "-m", "venv", "--clear", "--system-site-packages", str(venv)],
                     [str(_python(venv)), "-m", "pip", "install", "--quiet", "torch", "--index-url", INDEX]):
            try:
                done = subprocess.run(step, capture_output=True, text=True, timeout=1800)
            except (OSError, subprocess.TimeoutExpired) as error:
                pytest.skip(f"cannot build a venv with torch: {error}")
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-2:]
                pytest.skip(f"cannot build a venv with torch ({' '.join(step[:3])} failed: {' / '.join(tail)})")
        if not _works(venv):
            pytest.skip(f"torch installed in {venv} but `import torch.utils.data` fails")
        return venv


if __name__ == "__main__" and sys.argv[1:] == ["--prepare"]:  # conftest.py's background build
    os.nice(19)
    try:
        print(find_or_build_venv())
    except BaseException as reason:  # pytest.skip: the test will meet the same reason itself
        print(f"not prepared: {reason}")
