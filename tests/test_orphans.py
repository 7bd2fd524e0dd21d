"""A run killed with SIGKILL leaves no worker behind: the segmentation stage's workers die with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

RUN_STAGE = """
from mrsisr.stages import segmentation
from mrsisr.study.profiles import load_profile, stage_parameters
params = stage_parameters("segmentation", load_profile("ci", {{"n_subjects": 40}}))
segmentation.run({run_dir!r}, params, workers=2, progress=False)
"""


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in state


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are a Linux feature")
def test_workers_die_when_the_stage_is_killed(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", RUN_STAGE.format(run_dir=str(tmp_path))])
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while time.monotonic() < deadline and len(workers) < 2:
        time.sleep(0.5)
        workers = [pid for pid in _children(process.pid) if _alive(pid)]
    assert len(workers) == 2, "the stage did not start its two workers"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers), "a worker survived its killed parent"
