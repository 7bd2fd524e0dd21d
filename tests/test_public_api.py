"""The public API: the names of ``mrsisr.__all__`` resolve, and README's example runs against a ci run."""

from __future__ import annotations

import re
import subprocess
import sys

import mrsisr
from mrsisr.study.runner import REPO_ROOT

MARKER = "<!-- api-example"


def readme_example() -> str:
    """The python block of README.md that follows the api-example marker."""
    text = (REPO_ROOT / "README.md").read_text()
    after = text[text.index(MARKER) :]
    return re.search(r"```python\n(.*?)```", after, re.DOTALL).group(1)


def test_every_public_name_resolves_and_is_documented():
    for name in mrsisr.__all__:
        function = getattr(mrsisr, name)
        assert callable(function) and function.__doc__, name
    assert "load_subject" in mrsisr.__all__ and "predict" in mrsisr.__all__


def test_importing_the_package_does_not_load_the_network_stack():
    code = "import sys, mrsisr; print('keras' in sys.modules, 'tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_readme_example_runs_against_a_run(ci_run, tmp_path):
    script = readme_example().replace("runs/demo", str(ci_run["run_dir"]))
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("model ") and lines[1].startswith("spline ") and lines[0].endswith(" dB")
    assert lines[2] == "['NAA', 'tCho', 'tCho/NAA', 'tCho/tCr', 'tCr'] (1, 128, 128) (1, 32, 32)"
