"""How much the network relies on its guide: scores with the FLAIR guide perturbed at inference only.

A real FLAIR differs from the anatomy that made the maps: another contrast, thick slices resampled, bias,
noise, a small misregistration. Each perturbation below imitates one of these on the test guides; the
network's PSNR under it, against the PSNR with the guide as the test split holds it, says how much of the
network's gain a real guide could take away.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import pandas as pd
from scipy import ndimage

from mrsisr.network.model import predict
from mrsisr.scoring.metrics import per_map_metrics

NOISE_SEED = 7


def _blur(guide: np.ndarray) -> np.ndarray:
    return ndimage.gaussian_filter(guide, sigma=(0, 1.0, 1.0))


def _shift(guide: np.ndarray) -> np.ndarray:
    return ndimage.shift(guide, (0, 1, 0), order=0, mode="nearest")


def _gamma(guide: np.ndarray) -> np.ndarray:
    return np.clip(guide, 0.0, 1.0) ** 2


def _noise(guide: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(NOISE_SEED)
    return guide + rng.normal(0.0, 0.05, guide.shape).astype(np.float32)


PERTURBATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "as in the test split": lambda guide: guide,
    "Gaussian blur, sigma 1 px": _blur,
    "shifted 1 px (1.9 mm at a 240 mm field of view)": _shift,
    "gamma 2": _gamma,
    "additive noise, SD 0.05": _noise,
    "no guide (zeros)": np.zeros_like,
}


def guide_robustness(model: keras.Model, lr: np.ndarray, guide: np.ndarray, truth: np.ndarray) -> pd.DataFrame:
    """Mean PSNR and SSIM of a guided model with each perturbation of its guide, and the loss in PSNR.

    Parameters
    ----------
    model : keras.Model
        A guided network.
    lr, guide, truth : ndarray
        Test inputs (N, 32, 32), guides and ground truths (N, 128, 128).

    Returns
    -------
    pandas.DataFrame
        One row per perturbation (:data:`PERTURBATIONS`): ``guide, psnr, ssim, psnr_loss_db``.
    """
    rows = []
    for name, perturb in PERTURBATIONS.items():
        perturbed = perturb(np.asarray(guide, dtype=np.float32)).astype(np.float32)
        scores = per_map_metrics(np.clip(predict(model, lr, perturbed), 0.0, 1.0), truth)
        rows.append({"guide": name, "psnr": float(scores["psnr"].mean()), "ssim": float(scores["ssim"].mean())})
    table = pd.DataFrame(rows)
    table["psnr_loss_db"] = table["psnr"].iloc[0] - table["psnr"]
    return table
