"""What every notebook page does besides its science: parameters, the stage call, figures and glued values.

A notebook's ``parameters`` cell declares only ``profile``, ``run_dir`` and ``figures_dir``; ``mrsisr run``
injects them and the ``--set`` values of the stage's parameters (``papermill -p NAME VALUE`` does the same
for one notebook). :class:`StagePage` reads those from the notebook's namespace, validates the stage's
parameters, shows them beside their defaults and meanings, runs the stage, saves figures and glues values.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler
from pydantic import BaseModel

from mrsisr.stages import Stage, get_stage
from mrsisr.study.atomic import atomic_path
from mrsisr.study.cache import current
from mrsisr.study.profiles import declared_parameters, load_profile, stage_parameter_names, stage_parameters

FIGURE_DPI = 150


class StagePage:
    """The plumbing of one stage's notebook page.

    Parameters
    ----------
    stage : str
        The stage's name.
    namespace : mapping
        The notebook's globals: ``profile``, ``run_dir``, ``figures_dir`` and any injected parameter.

    Attributes
    ----------
    stage : Stage
    profile : str
    run_dir, figures_dir : pathlib.Path
    overrides : dict
        The stage's parameters that were injected (``--set`` or ``papermill -p``).
    params : pydantic.BaseModel
        The stage's validated, effective parameters.
    """

    def __init__(self, stage: str, namespace: Mapping[str, Any]):
        self.stage: Stage = get_stage(stage)
        self.profile = str(namespace["profile"])
        self.run_dir = Path(namespace["run_dir"])
        self.figures_dir = Path(namespace["figures_dir"])
        names = stage_parameter_names(stage)
        self.overrides = {name: namespace[name] for name in names if name in namespace}
        self.profile_values = load_profile(self.profile)
        self.params: BaseModel = stage_parameters(stage, load_profile(self.profile, self.overrides))
        self.glued: set[str] = set()

    def parameter_table(self) -> Styler:
        """The stage's parameters: default, this profile's value, this run's value and meaning (not truncated)."""
        declared = declared_parameters()
        rows = []
        for name, value in self.params.model_dump().items():
            rows.append(
                {
                    "parameter": name,
                    "default": _shown(declared[name].default),
                    f"profile {self.profile}": _shown(self.profile_values[name]),
                    "this run": _shown(value),
                    "meaning": declared[name].help,
                }
            )
        return pd.DataFrame(rows).set_index("parameter").style

    def rerun_command(self) -> str:
        """The command that runs this page again with this run's values (edit a ``--set`` to change one)."""
        sets = " ".join(f"--set {name}={_shown(value, cli=True)}" for name, value in self.overrides.items())
        example = "" if self.overrides else " --set NAME=VALUE"
        return f"mrsisr run --profile {self.profile} --stage {self.stage.name} {sets}{example}".replace("  ", " ")

    def data_source(self) -> str:
        """In words, the anatomy this run's maps come from (read from the segmentation stage's output)."""
        params = current(self.run_dir, "segmentation").params
        source = params["anatomy_source"]
        if source == "brats":
            return f"real BraTS glioma MRI ({params['brats_root']})"
        if source == "nifti":
            return f"real T1/FLAIR NIfTI subjects ({params['nifti_glob']})"
        return "the synthetic phantom cohort"

    def caption(self) -> str:
        """The phrase every data-bearing figure and table of this page carries: profile and data."""
        return f"{self.profile} profile, maps synthesised from {self.data_source()}"

    def run(self, **options: Any) -> Any:
        """Run the stage (or reuse its cache) with the page's parameters; return the stage's result."""
        return self.stage.module().run(self.run_dir, self.params, **options)

    def save_figure(self, fig: Any, name: str) -> None:
        """Save a matplotlib figure to ``figures_dir/name`` atomically, at the study's one resolution."""
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        path = self.figures_dir / name
        with atomic_path(path, suffix=path.suffix) as tmp:
            fig.savefig(tmp, dpi=FIGURE_DPI, bbox_inches="tight", format=path.suffix.lstrip("."))

    def glue(self, values: Mapping[str, Any]) -> None:
        """Glue every value under ``<stage>_<name>``, for the book's pages (``{glue:text}``).

        The first call also glues ``profile`` and ``data`` (:meth:`data_source`), so that every caption of
        the book can name both; a ``data`` in ``values`` (the 7T validation's data) takes precedence.
        """
        from myst_nb import glue

        page_values = {} if self.glued else {"profile": self.profile, "data": self.data_source()}
        for name, value in (page_values | dict(values)).items():
            key = f"{self.stage.name}_{name}"
            if key not in self.glued:
                glue(key, value, display=False)
                self.glued.add(key)


def _shown(value: Any, cli: bool = False) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str) and not cli:
        return value or '""'
    return str(value)
