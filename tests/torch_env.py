"""torch (CPU build) in a venv of its own, for the loader's DataLoader test.

The CPU wheel (~550 MB) comes from PyTorch's own index; PyPI's default wheel pulls 2 GB of
CUDA libraries. The venv sees the system's site-packages (any2dataset's dependencies), so
only torch is installed there. `find_or_build_venv()` reuses $A2D_TORCH_VENV or
~/.cache/any2dataset-tests/torch-venv, builds it when missing (conftest.py starts that in
the background, nice'd, when the test is collected; a file lock makes the test wait), and
calls pytest.skip with the reason when pip cannot.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from venv_steps import CACHE, building, install

INDEX = "https://download.pytorch.org/whl/cpu"


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _works(venv: Path) -> bool:
    if not _python(venv).exists():
        return False
    return subprocess.run([str(_python(venv)), "-c", "import torch.utils.data"], capture_output=True,
                          timeout=300).returncode == 0


def find_or_build_venv() -> Path:
    with building("torch-venv"):
        given = os.environ.get("A2D_TORCH_VENV")
        venv = Path(given) if given else CACHE / "torch-venv"
        if _works(venv):
            return venv
        install([sys.executable, "-m", "venv", "--clear", "--system-site-packages", str(venv)], "torch")
        install([str(_python(venv)), "-m", "pip", "install", "--quiet", "torch", "--index-url", INDEX], "torch")
        if not _works(venv):
            pytest.skip(f"torch installed in {venv} but `import torch.utils.data` fails")
        return venv


if __name__ == "__main__" and sys.argv[1:] == ["--prepare"]:  # conftest.py's background build
    os.nice(19)
    try:
        print(find_or_build_venv())
    except BaseException as reason:  # pytest.skip: the test will meet the same reason itself
        print(f"not prepared: {reason}")
