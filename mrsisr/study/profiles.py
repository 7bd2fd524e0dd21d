"""Profiles: the study's parameters, read from the one file ``profiles.yaml``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

DEFAULT_PROFILE = "demo"


@dataclass(frozen=True)
class Stage:
    """One step of the study: a name, the notebook that runs it and the stages whose results it reads."""

    name: str
    notebook: str
    upstream: tuple[str, ...] = ()


STAGES: tuple[Stage, ...] = (
    Stage("segmentation", "01_segmentation.ipynb"),
    Stage("synthesis", "02_synthesis.ipynb", ("segmentation",)),
    Stage("training", "03_training.ipynb", ("synthesis",)),
    Stage("evaluation", "04_evaluation.ipynb", ("synthesis", "training")),
    Stage("validation_7t", "05_validation_7t.ipynb", ("training",)),
)


def _read_file() -> dict[str, Any]:
    text = resources.files("mrsisr.study").joinpath("profiles.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def profile_names() -> list[str]:
    """Return the names of the profiles defined in ``profiles.yaml``."""
    return list(_read_file()["profiles"])


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are read as YAML (``3``, ``1e-3``, ``true``, ``[a, b]``).

    Raises
    ------
    ValueError
        If an item has no ``=``.
    """
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        overrides[key.strip()] = _read_value(value) if value.strip() else ""
    return overrides


def _read_value(text: str) -> Any:
    """Read one ``--set`` value as YAML, and exponent numbers YAML 1.1 leaves as text (``1e-3``) as floats."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value) if any(c.isdigit() for c in value) else value
        except ValueError:
            return value
    return value


def load_profile(name: str = DEFAULT_PROFILE, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return every parameter of profile ``name`` with ``overrides`` applied.

    Raises
    ------
    ValueError
        If the profile or an override names something ``profiles.yaml`` does not define; the
        message lists the valid names.
    """
    data = _read_file()
    profiles = data["profiles"]
    if name not in profiles:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(profiles)}")
    params = dict(data["defaults"])
    for source, values in ((f"profile {name!r}", profiles[name] or {}), ("--set", overrides or {})):
        unknown = sorted(set(values) - set(params))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {', '.join(unknown)} in {source}; valid parameters: {', '.join(sorted(params))}"
            )
        params.update(values)
    return params


def select_stages(names: Iterable[str] | None) -> list[Stage]:
    """Return the stages named (by name or by number such as ``01``), in study order.

    Raises
    ------
    ValueError
        For an unknown stage name, listing the valid ones.
    """
    if not names:
        return list(STAGES)
    wanted = set()
    for name in names:
        matches = [s for s in STAGES if name in (s.name, s.notebook[:2], s.notebook.removesuffix(".ipynb"))]
        if not matches:
            valid = ", ".join(s.name for s in STAGES)
            raise ValueError(f"unknown stage {name!r}; valid stages: {valid}")
        wanted.add(matches[0].name)
    return [s for s in STAGES if s.name in wanted]
