"""torch (CPU build) in a venv of its own, for the loader's DataLoader test and the model
stages' tests (with openai-whisper, transformers and OpenCV on top).

The CPU wheel (~550 MB) comes from PyTorch's own index; PyPI's default wheel pulls 2 GB of
CUDA libraries. The venv sees the system's site-packages (any2dataset's dependencies), so
only torch and the models' packages are installed there: openai-whisper without its
dependencies (they name triton, 200 MB of GPU compiler the CPU never uses), then the ones it
imports. `find_or_build_venv()` reuses $A2D_TORCH_VENV or
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


MODELS_CHECK = "import torch.utils.data, whisper, transformers, tokenizers, cv2"
WHISPER_NEEDS = ["tiktoken", "more-itertools", "numba"]
MODEL_PACKAGES = ["transformers", "tokenizers", "opencv-python-headless"]


def _works(venv: Path, check: str = "import torch.utils.data") -> bool:
    if not _python(venv).exists():
        return False
    return subprocess.run([str(_python(venv)), "-c", check], capture_output=True, timeout=300).returncode == 0


def find_or_build_venv() -> Path:
    with building("torch-venv"):
        given = os.environ.get("A2D_TORCH_VENV")
        venv = Path(given) if given else CACHE / "torch-venv"
        if _works(venv, MODELS_CHECK):
            return venv
        pip = [str(_python(venv)), "-m", "pip", "install", "--quiet"]
        if not _works(venv):
            install([sys.executable, "-m", "venv", "--clear", "--system-site-packages", str(venv)], "torch")
            install([*pip, "torch", "--index-url", INDEX], "torch")
        if not _works(venv):
            pytest.skip(f"torch installed in {venv} but `import torch.utils.data` fails")
        install([*pip, "--no-deps", "openai-whisper"], "openai-whisper")
        install([*pip, *WHISPER_NEEDS, *MODEL_PACKAGES], "the models' packages")
        if not _works(venv, MODELS_CHECK):
            pytest.skip(f"the models' packages installed in {venv} but `{MODELS_CHECK}` fails")
        return venv


if __name__ == "__main__" and sys.argv[1:] == ["--prepare"]:  # conftest.py's background build
    os.nice(19)
    try:
        print(find_or_build_venv())
    except BaseException as reason:  # pytest.skip: the test will meet the same reason itself
        print(f"not prepared: {reason}")
