"""Where the packaged default model of ``mrsisr upscale`` lives.

``mrsisr/weights/default_model.keras`` is trained by ``scripts/train_default_model.py`` with the study's
own code; ``default_model.json`` beside it records the command, profile, parameters, date, sha256 and
the test metrics of that training run.
"""

from __future__ import annotations

import json
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_MODEL = WEIGHTS_DIR / "default_model.keras"
DEFAULT_MODEL_CARD = WEIGHTS_DIR / "default_model.json"


def default_model_path() -> Path:
    """Return the path of the packaged default model.

    Raises
    ------
    FileNotFoundError
        If the package ships no default model (it has not been trained yet), saying how to make one.
    """
    if not DEFAULT_MODEL.is_file():
        raise FileNotFoundError(
            f"no packaged default model at {DEFAULT_MODEL}: pass a trained model with --model "
            "(e.g. runs/demo/model/model.keras) or train one with `python scripts/train_default_model.py`"
        )
    return DEFAULT_MODEL


def default_model_card() -> dict:
    """Return the provenance record of the packaged default model (empty if there is none)."""
    return json.loads(DEFAULT_MODEL_CARD.read_text()) if DEFAULT_MODEL_CARD.is_file() else {}
