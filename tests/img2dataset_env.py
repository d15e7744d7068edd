"""The real img2dataset, in a venv of its own, for differential tests.

`img2dataset_resizer` (a session fixture) finds a venv with img2dataset at $A2D_IMG2DATASET_VENV or
/work/i2d-venv, else builds one in ~/.cache/any2dataset-tests/i2d-venv (reused while it works), and
skips with the reason only when pip cannot install img2dataset. It returns a function that runs
img2dataset's Resizer on a list of cases in ONE subprocess call:

    resize([{"image": b"...", "options": {"image_size": 64, "resize_mode": "border", ...}}, ...])
    -> [{"image": b"..." or None, "width", "height", "original_width", "original_height", "error"}, ...]

`options` are the Resizer's keyword arguments (img2dataset.resizer.Resizer), as img2dataset's
download() passes them.
"""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CACHE = Path.home() / ".cache" / "any2dataset-tests"
DEFAULT_VENV = Path("/work/i2d-venv")

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


def find_or_build_venv() -> Path:
    """A venv whose python imports img2dataset; pytest.skip if none can be made."""
    given = os.environ.get("A2D_IMG2DATASET_VENV")
    for venv in filter(None, [given and Path(given), DEFAULT_VENV]):
        if _works(venv):
            return venv
    venv = CACHE / "i2d-venv"
    if _works(venv):
        return venv
    CACHE.mkdir(parents=True, exist_ok=True)
    steps = [[sys.executable, "-m", "venv", "--clear", str(venv)],
             [str(_python(venv)), "-m", "pip", "install", "--quiet", "img2dataset"]]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as error:
            pytest.skip(f"cannot build a venv with the real img2dataset to compare with: {error}")
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            pytest.skip(f"cannot build a venv with the real img2dataset to compare with ({' '.join(step[:4])} "
                        f"failed: {' / '.join(tail)})")
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
