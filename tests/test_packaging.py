"""The package installs on its own: its declared dependencies cover its imports and admit the locked versions."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mrsisr.study.runner import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
REQUIREMENTS = [Requirement(line) for line in PYPROJECT["project"]["dependencies"]]
DECLARED = {canonicalize_name(requirement.name): requirement for requirement in REQUIREMENTS}


def _top_level_imports(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"mrsisr", "__future__"}


def test_every_third_party_import_is_a_declared_dependency():
    distributions = metadata.packages_distributions()
    missing = []
    for module in sorted(_top_level_imports(REPO_ROOT / "mrsisr")):
        owners = {canonicalize_name(name) for name in distributions.get(module, [module])}
        if not owners & set(DECLARED) and not any(_required_by_declared(owner) for owner in owners):
            missing.append(f"{module} ({', '.join(sorted(owners))})")
    assert not missing, f"imported by mrsisr/ but not in pyproject.toml's dependencies: {missing}"


def _required_by_declared(distribution: str) -> bool:
    """True when a declared dependency installs ``distribution`` (e.g. tensorflow-cpu brings keras' backend)."""
    for name in DECLARED:
        requires = metadata.requires(name) or []
        if any(canonicalize_name(Requirement(r).name) == distribution for r in requires):
            return True
    return False


def test_declared_ranges_admit_the_locked_versions():
    locked = {}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        if "==" in line:
            name, version = line.split("==")
            locked[canonicalize_name(name)] = version.strip()
    for name, requirement in DECLARED.items():
        assert name in locked, f"{name} is declared but not locked in requirements.txt"
        assert requirement.specifier.contains(locked[name]), f"{requirement} excludes the locked {name}=={locked[name]}"


def test_the_command_and_its_version():
    assert PYPROJECT["project"]["scripts"]["mrsisr"] == "mrsisr.cli:main"
    import mrsisr

    assert metadata.version("mrsisr") == mrsisr.__version__
