"""The packaged default model of ``mrsisr upscale``: where it lives, its provenance, its integrity.

``mrsisr/weights/default_model.keras`` is trained by ``scripts/train_default_model.py`` with the study's
own code; ``default_model.json`` beside it records the command, profile, parameters, date, git commit,
library versions, Keras backend, the stage keys, the sha256 of the model file and the test metrics of that
training run. The sha256 is checked every time the packaged model is looked up, so a damaged or swapped
file is refused before it upscales anything.
"""

from __future__ import annotations

import json
from pathlib import Path

from mrsisr.study.atomic import file_sha256

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_MODEL = WEIGHTS_DIR / "default_model.keras"
DEFAULT_MODEL_CARD = WEIGHTS_DIR / "default_model.json"
PHANTOM_NOTICE = (
    "the packaged model was trained on simulated phantom maps only (no real MRSI, no real anatomy): "
    "check its output against your data, or pass a model trained on data like yours with --model"
)


def default_model_card() -> dict:
    """Return the provenance record of the packaged default model (empty if there is none)."""
    return json.loads(DEFAULT_MODEL_CARD.read_text()) if DEFAULT_MODEL_CARD.is_file() else {}


def default_model_path() -> Path:
    """Return the path of the packaged default model after checking its sha256 against its card.

    Raises
    ------
    FileNotFoundError
        If the package ships no default model (it has not been trained yet), saying how to make one.
    ValueError
        If the card records no sha256 or the file's sha256 differs from it (a damaged or replaced file).
    """
    if not DEFAULT_MODEL.is_file():
        raise FileNotFoundError(
            f"no packaged default model at {DEFAULT_MODEL}: pass a trained model with --model "
            "(e.g. runs/demo/training/model.keras) or train one with `python scripts/train_default_model.py`"
        )
    expected = default_model_card().get("sha256")
    if not expected:
        raise ValueError(f"packaged model {DEFAULT_MODEL}: its card {DEFAULT_MODEL_CARD} records no sha256")
    actual = file_sha256(DEFAULT_MODEL)
    if actual != expected:
        raise ValueError(
            f"packaged model {DEFAULT_MODEL} is damaged or was replaced: its sha256 is {actual}, its card "
            f"{DEFAULT_MODEL_CARD.name} records {expected}; reinstall mrsisr or retrain it with "
            "`python scripts/train_default_model.py`"
        )
    return DEFAULT_MODEL
