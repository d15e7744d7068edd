"""The real img2dataset, in a venv of its own, for differential tests.

`img2dataset_resizer` (a session fixture) finds a venv with img2dataset at $A2D_IMG2DATASET_VENV or
/work/i2d-venv, else builds one in ~/.cache/any2dataset-tests/i2d-venv (reused while it works), and
skips with the reason only when pip cannot install img2dataset. It returns a function that runs
img2dataset's Resizer on a list of cases in ONE subprocess call:

    resize([{"image": b"...", "options": {"image_size": 64, "resize_mode": "border", ...}}, ...])
    -> [{"image": b"..." or None, "width", "height", "original_width", "original_height", "error"}, ...]

`options` are the Resizer's keyword arguments (img2dataset.resizer.Resizer), as img2dataset's
download() passes them.

img2dataset writes tfrecord with TensorFlow and tensorflow-io (TENSORFLOW, ~2 min and 1.5 GB to
install): `find_or_build_venv(tensorflow=True)` adds them to the venv. Building is slow, so
conftest.py starts `python tests/img2dataset_env.py --prepare` in the background when the session
collects a differential test; a file lock makes the tests wait for that build rather than race it.
"""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from venv_steps import CACHE, building, install

DEFAULT_VENV = Path("/work/i2d-venv")
TENSORFLOW = ["tensorflow-cpu", "tensorflow-io"]

# Run by the venv's python: cases (JSON) on stdin, results (JSON) on stdout.
DRIVER = r"""
import base64, io, json, sys
from img2dataset.resizer import Resizer

results = []
for case in json.load(sys.stdin):
    resizer = Resizer(**case["options"])
    data, width, height, original_width, original_height, error = resizer(io.BytesIO(base64.b64decode(case["image"])))
    results.append({"image": None if data is None else base64.b64encode(data).decode(), "width": width,
                    "height": height, "original_width": original_width, "original_height": original_height,
                    "error": error})
json.dump(results, sys.stdout)
"""


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _works(venv: Path) -> bool:
    python = _python(venv)
    if not python.exists():
        return False
    check = subprocess.run([str(python), "-c", "import img2dataset.resizer"], capture_output=True, timeout=120)
    return check.returncode == 0


def _has_tensorflow(venv: Path) -> bool:
    check = subprocess.run([str(_python(venv)), "-c", "import tensorflow, tensorflow_io"], capture_output=True,
                           timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    return check.returncode == 0


def find_or_build_venv(tensorflow: bool = False) -> Path:
    """A venv whose python imports img2dataset (and TensorFlow, if asked); pytest.skip if none
    can be made."""
    with building("i2d-venv"):
        venv = _find_or_build()
        if tensorflow and not _has_tensorflow(venv):
            install([str(_python(venv)), "-m", "pip", "install", "--quiet", *TENSORFLOW], "TensorFlow to compare with")
            if not _has_tensorflow(venv):
                pytest.skip(f"TensorFlow installed in {venv} but `import tensorflow, tensorflow_io` fails")
        return venv


def _find_or_build() -> Path:
    given = os.environ.get("A2D_IMG2DATASET_VENV")
    for venv in filter(None, [given and Path(given), DEFAULT_VENV]):
        if _works(venv):
            return venv
    venv = CACHE / "i2d-venv"
    if _works(venv):
        return venv
    what = "the real img2dataset to compare with"
    install([sys.executable, "-m", "venv", "--clear", str(venv)], what)
    install([str(_python(venv)), "-m", "pip", "install", "--quiet", "img2dataset"], what)
    if not _works(venv):
        pytest.skip(f"img2dataset installed in {venv} but `import img2dataset.resizer` fails")
    return venv


@pytest.fixture(scope="session")
def img2dataset_resizer():
    python = str(_python(find_or_build_venv()))

    def resize(cases: list[dict]) -> list[dict]:
        payload = json.dumps([{"image": base64.b64encode(case["image"]).decode(), "options": case["options"]}
                              for case in cases])
        done = subprocess.run([python, "-c", DRIVER], input=payload, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"img2dataset's resizer failed:\n{done.stderr[-3000:]}"
        results = json.loads(done.stdout)
        for result in results:
            if result["image"] is not None:
                result["image"] = base64.b64decode(result["image"])
        return results

    return resize


if __name__ == "__main__" and sys.argv[1:] == ["--prepare"]:
    os.nice(19)  # the tests running meanwhile come first (some measure timings)
    # conftest.py's background build: the venv, with TensorFlow, ready when the tests come to it
    try:
        print(find_or_build_venv(tensorflow=True))
    except BaseException as reason:  # pytest.skip: the tests will meet the same reason themselves
        print(f"not prepared: {reason}")
