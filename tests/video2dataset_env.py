"""The real video2dataset 1.3.0, in a venv of its own, for differential tests.

`find_or_build_venv()` returns a venv whose python imports `video2dataset.main`: $A2D_VIDEO2DATASET_VENV,
else /work/v2d-venv, else ~/.cache/any2dataset-tests/v2d-venv, which it builds when missing or broken
(52 s and 360 MB on the machine these tests were written on, against 6 GB for a full install);
it calls pytest.skip with the reason when pip cannot build it.

video2dataset 1.3.0 pins torch 2.1.2, torchaudio, torchdata, transformers and CUDA wheels (6 GB), which
only its model stages (optical flow, captioning, whisper) and its dataloader use. So the venv has
`video2dataset==1.3.0 --no-deps` plus only what its download stage imports (DOWNLOAD_DEPENDENCIES),
with numpy<2, pyarrow<16 and pandas<3 as video2dataset's era had them.

The modules that `video2dataset.main` imports at module level only for those model stages (MODEL_ONLY:
torch, torchaudio, torchdata, transformers, einops, decord, ...) are given, in the driver script that
runs the real tool, by a small import shim: a sys.meta_path finder that returns permissive placeholder
modules for exactly those names, and only when they are not installed. This is honest for what is
compared: the download stage never calls them (a placeholder called by mistake returns placeholders
that no writer can serialize, so such a call would fail the run, not pass unnoticed), and every piece of
code under comparison (InputSharder, DownloadWorker, VideoDataReader, ClippingSubsampler, FFProbe,
the sample writers, the logger's _stats.json, the multiprocessing distributor) is video2dataset's own,
unmodified. The shim sits at the top level of the driver FILE so that the spawned worker processes
of the multiprocessing distributor (which re-import the main file as __mp_main__) have it too.

`run_video2dataset(log=..., timeout=..., **kwargs)` runs `video2dataset.main.video2dataset(**kwargs)`
in that venv in a subprocess (kwargs as JSON: a config dict passes as a dict), stdout and stderr to
the `log` file, and returns the exit code.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from venv_steps import CACHE, building

DEFAULT_VENV = Path("/work/v2d-venv")
VERSION = "1.3.0"
# pandas<3: pandas 3 (Python >= 3.11 only) reads csv/json strings as large_string, so the metadata
# schema would depend on the Python version; video2dataset 1.3.0 (Feb 2024) met pandas 2.
CONSTRAINTS = ["numpy<2", "pyarrow<16", "pandas<3"]
# What video2dataset's download stage imports (directly, or at module level of what main imports).
DOWNLOAD_DEPENDENCIES = ["fire<0.6", "requests", "ffmpeg-python", "yt-dlp", "pyarrow", "fsspec", "webdataset",
                         "webvtt-py", "pandas", "tqdm", "omegaconf", "numpy"]
# Imported at module level by main's imports, only for stages and subsamplers the download stage
# does not run here (model stages, dataloader, cut detection, wandb logging when enable_wandb=False).
MODEL_ONLY = ["torch", "torchaudio", "torchdata", "transformers", "einops", "decord", "langdetect", "whisperx",
              "scipy", "soundfile", "accelerate", "bitsandbytes", "timeout_decorator", "scenedetect", "cv2",
              "wandb"]

# Run by the venv's python as a file: `python driver.py '<kwargs as JSON>'`.
DRIVER = r'''
import importlib.abc, importlib.machinery, importlib.util, json, sys, types

MODEL_ONLY = set(%(model_only)r)


class _Placeholder(type):
    """A class that is anything: an attribute, a call, a base class, a decorator, a type hint."""

    def __getattr__(cls, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _Placeholder(name, (), {})

    def __call__(cls, *args, **kwargs):
        if len(args) == 1 and callable(args[0]) and not kwargs and not isinstance(args[0], _Placeholder):
            return args[0]  # used as a decorator
        return _Placeholder(cls.__name__, (), {})

    def __getitem__(cls, item):
        return cls

    def __or__(cls, other):
        return cls

    __ror__ = __or__


class _Module(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _Placeholder(name, (), {})


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Placeholder modules for MODEL_ONLY names (and their submodules), only when not installed."""

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.split(".")[0]
        if top not in MODEL_ONLY:
            return None
        if fullname == top:
            others = [finder for finder in sys.meta_path if finder is not self]
            if any(finder.find_spec(fullname, None) for finder in others if hasattr(finder, "find_spec")):
                return None  # really installed: use it
        elif not isinstance(sys.modules.get(top), _Module):
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        module = _Module(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _Finder())

if __name__ == "__main__":
    from video2dataset.main import video2dataset

    video2dataset(**json.loads(sys.argv[1]))
''' % {"model_only": MODEL_ONLY}


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _driver(venv: Path) -> Path:
    path = venv / "a2d_video2dataset_driver.py"
    if not path.exists() or path.read_text() != DRIVER:
        path.write_text(DRIVER)
    return path


def _works(venv: Path) -> bool:
    python = _python(venv)
    if not python.exists():
        return False
    probe = _driver(venv).read_text().split("if __name__")[0] + "import video2dataset.main\n"
    try:
        check = subprocess.run([str(python), "-c", probe], capture_output=True, timeout=300)
    except subprocess.TimeoutExpired:
        return False
    return check.returncode == 0


def build_venv(venv: Path) -> None:
    """Build (or rebuild from scratch) the venv; raise RuntimeError with pip's last lines on failure."""
    venv.parent.mkdir(parents=True, exist_ok=True)
    constraints = venv.parent / f"{venv.name}-constraints.txt"
    constraints.write_text("".join(line + "\n" for line in CONSTRAINTS))
    pip = [str(_python(venv)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    steps = [[sys.executable, "-m", "venv", "--clear", str(venv)],
             [*pip, "--no-deps", f"video2dataset=={VERSION}"],
             [*pip, "-c", str(constraints), *DOWNLOAD_DEPENDENCIES]]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise RuntimeError(f"{' '.join(step[:5])}: {error}") from error
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"{' '.join(step[:5])} failed: {' / '.join(tail)}")


def find_or_build_venv() -> Path:
    """A venv whose python imports video2dataset.main (with the shim); pytest.skip if none can be made.
    A file lock makes a test wait for the build conftest.py starts in the background (--prepare)."""
    with building("v2d-venv"):
        return _find_or_build()


def _find_or_build() -> Path:
    given = os.environ.get("A2D_VIDEO2DATASET_VENV")
    for venv in filter(None, [given and Path(given), DEFAULT_VENV]):
        if _works(venv):
            return venv
    venv = CACHE / "v2d-venv"
    if _works(venv):
        return venv
    try:
        build_venv(venv)
    except RuntimeError as error:
        pytest.skip(f"cannot build a venv with the real video2dataset {VERSION} to compare with: {error}")
    if not _works(venv):
        pytest.skip(f"video2dataset installed in {venv} but `import video2dataset.main` fails")
    return venv


def video2dataset_argv(venv: Path, **kwargs) -> list[str]:
    """The command that runs video2dataset.main.video2dataset(**kwargs) in the venv (kwargs as JSON)."""
    return [str(_python(venv)), str(_driver(venv)), json.dumps(kwargs)]


def video2dataset_env() -> dict:
    """The environment for that command: no PYTHONPATH into a checkout, no wandb."""
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "WANDB_MODE": "disabled"}


def run_video2dataset(*, log: Path, timeout: float = 300, cwd: Path | None = None, venv: Path | None = None,
                      **kwargs) -> int:
    """video2dataset.main.video2dataset(**kwargs) in the venv; output to `log`; the exit code."""
    argv = video2dataset_argv(venv or find_or_build_venv(), **kwargs)
    with open(log, "wb") as out:  # a file, not a pipe: a leftover worker may hold a pipe open
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, timeout=timeout,
                              env=video2dataset_env())
    return done.returncode


if __name__ == "__main__" and sys.argv[1:] == ["--prepare"]:  # conftest.py's background build
    os.nice(19)  # the tests running meanwhile come first (some measure timings)
    try:
        print(find_or_build_venv())
    except BaseException as reason:  # pytest.skip: the tests will meet the same reason themselves
        print(f"not prepared: {reason}")
elif __name__ == "__main__":  # build or rebuild a venv: python tests/video2dataset_env.py [/path/to/venv]
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_VENV
    build_venv(target)
    print(target, "works" if _works(target) else "BROKEN")
