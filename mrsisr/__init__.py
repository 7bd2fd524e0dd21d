"""mrsisr: a re-executable study of deep-learning super-resolution for MRSI metabolite maps.

The few functions a script needs, in the order data flows (imported on first use, so that
``import mrsisr`` stays fast):

- anatomy: :func:`load_subject` (T1, FLAIR and tumour mask from files, segmented), :func:`make_phantom`,
  :func:`segment_tissues`;
- maps: :func:`synthesize_subject` (a subject's maps as the study makes them), :func:`make_lowres`;
- data of a run: :func:`load_profile`, :func:`load_test_split`;
- network: :func:`load_model`, :func:`predict`;
- scoring: :func:`interpolate` (the classical baselines), :func:`per_map_metrics`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_HOMES = {
    "load_subject": "mrsisr.anatomy.subject",
    "make_phantom": "mrsisr.anatomy.phantom",
    "segment_tissues": "mrsisr.anatomy.segmentation",
    "synthesize_subject": "mrsisr.stages.synthesis",
    "make_lowres": "mrsisr.maps.lowres",
    "load_profile": "mrsisr.study.profiles",
    "load_test_split": "mrsisr.stages.synthesis",
    "load_model": "mrsisr.network.model",
    "predict": "mrsisr.network.model",
    "interpolate": "mrsisr.scoring.baselines",
    "per_map_metrics": "mrsisr.scoring.metrics",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'mrsisr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
