"""The study's stages and the one stage graph.

A stage is one step of the study with one name everywhere: its notebook ``NN_<name>.ipynb``, its module
``mrsisr.stages.<name>``, its cache folder ``runs/<profile>/<name>/`` and its section of ``profiles.yaml``.
Each stage module has ``STAGE`` (its entry here) and ``run(run_dir, params)``, which builds or reuses the
stage's cached output and returns a result object holding everything its notebook shows:

- ``run_dir`` is the profile's run folder, ``runs/<profile>``;
- ``params`` is the stage's validated parameter model, :func:`mrsisr.study.profiles.stage_parameters`;
- the result's ``output`` is the stage's cache folder (:class:`mrsisr.study.cache.StageOutput`) and its
  ``glue_values`` the numbers the book's prose pages quote.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Stage:
    """One step of the study.

    Attributes
    ----------
    name : str
        The stage's one name (notebook stem without its number, module, cache folder, yaml section).
    number : int
        Its place in the study (the notebook's number).
    upstream : tuple of str
        The stages whose outputs it reads.
    title : str
        The title of its notebook page.
    """

    name: str
    number: int
    upstream: tuple[str, ...]
    title: str

    @property
    def notebook(self) -> str:
        """The notebook's file name, ``NN_<name>.ipynb``."""
        return f"{self.number:02d}_{self.name}.ipynb"

    def module(self) -> ModuleType:
        """Import and return the stage's module, ``mrsisr.stages.<name>``."""
        return importlib.import_module(f"mrsisr.stages.{self.name}")


STAGES: tuple[Stage, ...] = (
    Stage("segmentation", 1, (), "Anatomy and tissue segmentation"),
    Stage("synthesis", 2, ("segmentation",), "Metabolite maps"),
    Stage("training", 3, ("synthesis",), "Training the super-resolution network"),
    Stage("evaluation", 4, ("segmentation", "synthesis", "training"), "Evaluation: Table 2 and Figure 3"),
    Stage("validation_7t", 5, ("training",), "Validation on 7T-like MRSI: Figure 4"),
    Stage(
        "beyond",
        6,
        ("segmentation", "synthesis", "training", "evaluation"),
        "Beyond the paper: ablations, peer networks and stress tests",
    ),
)


def get_stage(name: str) -> Stage:
    """Return the stage called ``name``.

    Raises
    ------
    ValueError
        For an unknown name, listing the valid ones.
    """
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise ValueError(f"unknown stage {name!r}; valid stages: {', '.join(s.name for s in STAGES)}")


def select_stages(names: Iterable[str] | None) -> list[Stage]:
    """Return the stages named (by name, number such as ``01`` or notebook stem), in study order.

    Raises
    ------
    ValueError
        For an unknown stage name, listing the valid ones.
    """
    if not names:
        return list(STAGES)
    wanted = set()
    for name in names:
        matches = [s for s in STAGES if name in (s.name, f"{s.number:02d}", s.notebook.removesuffix(".ipynb"))]
        if not matches:
            raise ValueError(f"unknown stage {name!r}; valid stages: {', '.join(s.name for s in STAGES)}")
        wanted.add(matches[0].name)
    return [s for s in STAGES if s.name in wanted]


def downstream_of(name: str) -> list[Stage]:
    """The stages that read ``name``'s output, directly or through others, in study order."""
    reached = {name}
    for stage in STAGES:
        if reached.intersection(stage.upstream):
            reached.add(stage.name)
    return [stage for stage in STAGES if stage.name in reached - {name}]


TRAINED_MODEL_STAGES = ("segmentation", "synthesis", "training", "evaluation")  # a network trained and scored


def run_modules(run_dir: str | os.PathLike, params: dict, names: Iterable[str]) -> dict:
    """Run the named stages' modules in order, without their notebooks, each with its share of ``params`` (every
    parameter of a profile, as :func:`mrsisr.study.profiles.load_profile` returns them); return their results
    by name. Cached outputs are reused, as in ``mrsisr run``."""
    from mrsisr.study.profiles import stage_parameters

    return {name: get_stage(name).module().run(run_dir, stage_parameters(name, params)) for name in names}
