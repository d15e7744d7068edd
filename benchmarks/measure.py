"""What the benchmarks share: timing one command, and the medians of several runs."""

import os
import statistics
import subprocess
import sys
import time
from typing import NamedTuple


class Run(NamedTuple):
    seconds: float  # wall time
    peak_mib: float  # the command's own peak RSS (from wait4; its children are not counted)
    cpu: float  # its user + sys seconds


def run_measured(command: list[str], stdin_path: str | None = None, stdout_path: str = os.devnull,
                 cwd: str | None = None) -> Run:
    """Run one command to the end and measure it; exit the benchmark if it fails."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        with open(stdout_path, "wb") as stdout:
            started = time.perf_counter()
            process = subprocess.Popen(command, stdin=stdin, stdout=stdout, cwd=cwd)
            _, status, usage = os.wait4(process.pid, 0)
            elapsed = time.perf_counter() - started
    finally:
        if stdin_path:
            stdin.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command)} failed")
    return Run(elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


def medians(runs: list[Run]) -> Run:
    """Median wall and CPU time; the largest peak RSS."""
    return Run(statistics.median(r.seconds for r in runs), max(r.peak_mib for r in runs),
               statistics.median(r.cpu for r in runs))
