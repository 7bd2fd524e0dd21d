"""The study's parameters and profiles, read from the one file ``profiles.yaml``.

Each parameter is declared there once: its stage, default, type, meaning and allowed values. This module
turns those declarations into one typed, frozen parameter model per stage (pydantic, strict: ``1.5`` is no
``int``, ``"abc"`` no ``float``), applies a profile and ``--set`` overrides, and checks the relations
between parameters. Every problem is one sentence naming the parameter and the value.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

DEFAULT_PROFILE = "demo"
SHARED = "shared"
TYPES: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}
TYPE_NOUNS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "text", "list": "a list"}
OPERATORS = {"<=": operator.le, "<": operator.lt, "==": operator.eq}


@dataclass(frozen=True)
class Parameter:
    """One parameter as ``profiles.yaml`` declares it.

    Attributes
    ----------
    name : str
    stages : tuple of str
        The stages that read it.
    default : object
    type : str
        ``int``, ``float``, ``bool``, ``str`` or ``list`` (of strings).
    help : str
        Its meaning, as shown on the notebook pages.
    choices : tuple, optional
        The allowed values (of each item, for a list).
    min, max, above : float, optional
        Inclusive bounds and an exclusive lower bound.
    """

    name: str
    stages: tuple[str, ...]
    default: Any
    type: str
    help: str
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    above: float | None = None

    def annotation(self) -> Any:
        """The type annotation of this parameter in its stage's model."""
        if self.choices is None:
            return tuple[str, ...] if self.type == "list" else TYPES[self.type]
        choice = Literal[self.choices]  # type: ignore[valid-type]
        return tuple[choice, ...] if self.type == "list" else choice


@cache
def _read_file() -> dict[str, Any]:
    text = resources.files("mrsisr.study").joinpath("profiles.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


@cache
def declared_parameters() -> dict[str, Parameter]:
    """Return every parameter of ``profiles.yaml``, by name, in file order."""
    from mrsisr.stages import STAGES  # the stage registry names the stages; it imports nothing heavy

    all_stages = tuple(stage.name for stage in STAGES)
    declared: dict[str, Parameter] = {}
    for section, entries in _read_file()["parameters"].items():
        for name, spec in entries.items():
            spec = dict(spec)
            if section == SHARED:
                stages = spec.pop("stages")
                stages = all_stages if stages == "all" else tuple(stages)
            else:
                stages = (section,)
            choices = spec.pop("choices", None)
            declared[name] = Parameter(name=name, stages=stages, choices=tuple(choices) if choices else None, **spec)
    return declared


def stage_parameter_names(stage: str) -> list[str]:
    """Names of the parameters ``stage`` reads, in file order."""
    return [name for name, parameter in declared_parameters().items() if stage in parameter.stages]


@cache
def parameter_model(stage: str) -> type[BaseModel]:
    """Return the typed, frozen parameter model of ``stage`` (a pydantic class built from ``profiles.yaml``)."""
    fields = {}
    for name in stage_parameter_names(stage):
        parameter = declared_parameters()[name]
        bounds = {"ge": parameter.min, "le": parameter.max, "gt": parameter.above}
        default = tuple(parameter.default) if parameter.type == "list" else parameter.default
        fields[name] = (parameter.annotation(), Field(default, **{k: v for k, v in bounds.items() if v is not None}))
    title = "".join(part.title() for part in stage.split("_")) + "Parameters"
    config = ConfigDict(strict=True, extra="forbid", frozen=True)
    return create_model(title, __config__=config, **fields)


def stage_parameters(stage: str, values: Mapping[str, Any]) -> BaseModel:
    """Validate the parameters of ``stage`` taken from ``values`` (a full profile); return its model.

    Raises
    ------
    ValueError
        One sentence per wrong value, naming the parameter, the value and what is allowed.
    """
    names = stage_parameter_names(stage)
    chosen = {name: _coerce(name, values[name]) for name in names if name in values}
    try:
        model = parameter_model(stage)(**chosen)
    except ValidationError as error:
        raise ValueError(_describe(error, chosen)) from None
    _check_relations(model.model_dump())
    return model


def _coerce(name: str, value: Any) -> Any:
    """Numbers for float parameters may come as ints or as text YAML 1.1 leaves unread (``1e-3``)."""
    kind = declared_parameters()[name].type
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == "float" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if kind == "list" and isinstance(value, list):
        return tuple(value)
    return value


def _describe(error: ValidationError, values: Mapping[str, Any]) -> str:
    sentences = []
    for problem in error.errors():
        name = str(problem["loc"][0]) if problem["loc"] else "?"
        parameter = declared_parameters()[name]
        message = problem["msg"].replace("Input should be", "must be")
        allowed = f"one of {', '.join(map(str, parameter.choices))}" if parameter.choices else ""
        expected = "; ".join(part for part in (TYPE_NOUNS[parameter.type], allowed) if part)
        sentences.append(f"parameter {name}={values.get(name)!r}: {message} ({expected}).")
    return " ".join(sentences)


def _check_relations(values: Mapping[str, Any]) -> None:
    for relation in _read_file().get("relations", []):
        left, right = relation["left"], relation["right"]
        if left not in values or right not in values:
            continue
        factor = relation.get("factor", 1)
        if not OPERATORS[relation["op"]](values[left], factor * values[right]):
            scaled = f"{factor} x {right}" if factor != 1 else right
            raise ValueError(
                f"parameters {left}={values[left]!r} and {right}={values[right]!r}: "
                f"{left} must be {relation['op']} {scaled}."
            )


def profile_names() -> list[str]:
    """Return the names of the profiles defined in ``profiles.yaml``."""
    return list(_read_file()["profiles"])


def defaults() -> dict[str, Any]:
    """Every parameter's default value."""
    return {name: parameter.default for name, parameter in declared_parameters().items()}


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``name=value`` strings; values are read as plain YAML values (``3``, ``1e-3``, ``true``, ``[a, b]``).

    Raises
    ------
    ValueError
        If an item has no ``=`` or its value is not a plain YAML value (a number, text, true/false or a
        list of those), e.g. unbalanced brackets or a YAML tag.
    """
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects name=value, got {item!r}.")
        try:
            parsed = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            raise ValueError(
                f"--set {item!r}: the value is not a plain value (a number, text, true/false or [a, b]); "
                "quote text that contains YAML syntax."
            ) from None
        if not _plain(parsed):
            raise ValueError(f"--set {item!r}: the value must be a number, text, true/false or a list of those.")
        overrides[key.strip()] = parsed
    return overrides


def _plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(isinstance(item, str | int | float | bool) for item in value)
    return isinstance(value, str | int | float | bool)


def load_profile(name: str = DEFAULT_PROFILE, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return every parameter of profile ``name`` with ``overrides`` applied, validated.

    Raises
    ------
    ValueError
        If the profile or an override names something ``profiles.yaml`` does not define (the message
        lists the valid names), or a value is of the wrong type, out of range or breaks a relation.
    """
    profiles = _read_file()["profiles"]
    if name not in profiles:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(profiles)}")
    params = defaults()
    for source, values in ((f"profile {name!r}", profiles[name] or {}), ("--set", overrides or {})):
        unknown = sorted(set(values) - set(params))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {', '.join(unknown)} in {source}; valid parameters: {', '.join(sorted(params))}"
            )
        params.update(values)
    return validate_all(params)


def validate_all(params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate every stage's parameters in ``params``; return them with coerced values (floats, tuples)."""
    from mrsisr.stages import STAGES

    validated: dict[str, Any] = {}
    for stage in STAGES:
        validated |= stage_parameters(stage.name, params).model_dump()
    return validated
