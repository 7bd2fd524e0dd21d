"""The FLAIR-guided super-resolution network (32x32 map + 128x128 FLAIR -> 128x128 map), saving and prediction.

Architecture (``build_model``; the paper's Figure 2 as we read it):

1. **Guidance**: the 128x128 FLAIR enters the 32x32 trunk by space-to-depth (x4 -> 16 channels, nothing lost)
   and is concatenated with the low-resolution map (17 channels). Ablation: ``guide_entry="strided_conv"``
   learns the 16 channels instead, by two stride-2 3x3 convolutions (:func:`guide_features`).
2. **Head**: a 3x3 convolution to ``width`` channels.
3. **Trunk**: ``n_pairs`` pairs of an ERB (+ LeakyReLU), an HFAB attention branch and a GDFN.
4. **Long skip**: the head output is added to the trunk output.
5. **Tail**: a 3x3 convolution to 16 channels and depth-to-space x4 (sub-pixel convolution).
6. **Global skip**: the low-resolution map upsampled x4 by zero-filled k-space interpolation
   (:class:`mrsisr.network.layers.KSpaceUpsample`, a fixed separable linear map, the same under every Keras
   backend) is added to the output, so the network learns the residual detail. The k-space interpolant is
   the best of the classical baselines on k-space-truncated maps. The tail convolution starts at zero, so
   the untrained network returns exactly that interpolation and training only adds detail. Ablation:
   ``global_skip="bilinear"`` adds the bilinear interpolation instead (:func:`global_skip_of`).

The ablation switches of the study (``guided``, ``use_gdfn``, ``n_pairs``, ``global_skip``, ``guide_entry``)
are arguments of :func:`build_model` whose defaults give the study's network; the peer models are in
:mod:`mrsisr.network.variants`.

Prediction (:func:`predict`) runs the inference form of the network (:func:`inference_network`): every ERB
fused into one 3x3 convolution, FMEN's re-parameterisation. Every layer is convolutional or per-pixel, so the
same weights apply to any map whose sides the guide matches x4: the inference network is rebuilt from the
model's config with the needed input shapes and cached per (model, shape).
"""

from __future__ import annotations

import os
import weakref
import zipfile
from pathlib import Path

import keras
import numpy as np
from keras import layers

from mrsisr.network.layers import (
    ERB,
    GDFN,
    HFAB,
    LEAKY_SLOPE,
    DepthToSpace,
    KSpaceUpsample,
    SpaceToDepth,
    fold_batchnorm,
    fold_layernorm,
)

FACTOR = 4
LR_SIZE = 32
DEFAULT_WIDTH = 36
DEFAULT_MID_WIDTH = 12
DEFAULT_PAIRS = 8
DTYPE_POLICIES = ("float32", "mixed_bfloat16")
GLOBAL_SKIPS = ("kspace", "bilinear")
GUIDE_ENTRIES = ("space_to_depth", "strided_conv")
ERB_FORMS = ("expanded", "compact")

_INFERENCE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
PREDICT_BATCH = 16  # maps per forward pass of predict (batch_size); measured in benchmarks/benchmark_model.py


def disable_tensorflow_remapper() -> None:
    """Switch off TensorFlow's grappler "remapper" pass (TensorFlow backend only; a no-op otherwise).

    With TensorFlow 2.21 and its oneDNN kernels, the remapper rewrites the inference graph of this network
    (``model.predict``, ``model.evaluate``, the validation inside ``model.fit``) into fused kernels that do not
    compute what the layers define: on the demo model the graph's output differed from the layer-by-layer
    (eager) output by up to 0.23 on maps in [0, 1], and the test PSNR fell from 35.5 to 34.8 dB. It logs
    "remapper failed: ... LeakyReluGrad" on training graphs. Without the pass, graph and eager agree to float32
    rounding (``tests/test_model.py``). Called when this module is imported.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # only TensorFlow's graph optimiser settings, never inside the model

        tf.config.optimizer.set_experimental_options({"remapping": False})


disable_tensorflow_remapper()


def build_model(
    width: int = DEFAULT_WIDTH,
    mid_width: int = DEFAULT_MID_WIDTH,
    n_pairs: int = DEFAULT_PAIRS,
    use_gdfn: bool = True,
    guided: bool = True,
    lr_shape: tuple[int, int] = (LR_SIZE, LR_SIZE),
    dtype_policy: str = "float32",
    global_skip: str = "kspace",
    guide_entry: str = "space_to_depth",
    erb_form: str = "expanded",
) -> keras.Model:
    """Build the super-resolution network.

    Parameters
    ----------
    width : int
        Channels of the trunk (``C``). The default gives about 650,000 trainable parameters.
    mid_width : int
        Channels inside each HFAB attention branch.
    n_pairs : int
        Number of ERB + HFAB (+ GDFN) pairs in the trunk (the paper: 8).
    use_gdfn : bool
        Put a GDFN after each HFAB (ablation switch).
    guided : bool
        Take the FLAIR guide as a second input. Without it the model has the single input ``lr``.
    lr_shape : tuple of int
        In-plane shape ``(h, w)`` of the low-resolution input; the guide and the output are ``(4h, 4w)``.
    dtype_policy : {"float32", "mixed_bfloat16"}
        Keras dtype policy of the learned layers. ``mixed_bfloat16`` computes them in bfloat16 with float32
        weights (about twice the training speed on CPUs with AVX512-BF16/AMX; also fast on recent GPUs); the k-space
        skip and the output stay float32 in every case.
    global_skip : {"kspace", "bilinear"}
        Interpolation of the low-resolution map added to the output (ablation switch; :func:`global_skip_of`).
    guide_entry : {"space_to_depth", "strided_conv"}
        How the guide reaches the 32x32 trunk (ablation switch; :func:`guide_features`). Ignored unguided.
    erb_form : {"expanded", "compact"}
        The form in which every ERB (trunk and HFAB) is trained. ``expanded`` is FMEN's over-parameterised
        training form (1x1 to ``2C``, 3x3 with an inner residual, 1x1 back, outer residual); ``compact`` trains
        the single residual 3x3 convolution ``x + conv3x3(x)`` that it equals, with about a quarter of the
        ERB's arithmetic and fewer parameters. Both predict through the same inference form
        (:func:`inference_network`).

    Returns
    -------
    keras.Model
        Inputs ``lr`` ``(h, w, 1)`` (and ``guide`` ``(4h, 4w, 1)``), output ``sr`` ``(4h, 4w, 1)``.
    """
    check_positive("build_model", width=width, mid_width=mid_width, n_pairs=n_pairs)
    check_choice("build_model", "dtype_policy", dtype_policy, DTYPE_POLICIES)
    check_choice("build_model", "global_skip", global_skip, GLOBAL_SKIPS)
    check_choice("build_model", "guide_entry", guide_entry, GUIDE_ENTRIES)
    check_choice("build_model", "erb_form", erb_form, ERB_FORMS)
    compact = erb_form == "compact"
    mixed = {"dtype": dtype_policy}
    inputs = network_inputs(lr_shape, guided)
    lr = inputs[0]
    features = lr
    if guided:
        features = layers.Concatenate(name="concat_guide", **mixed)([lr, guide_features(inputs[1], guide_entry, mixed)])
    head = layers.Conv2D(width, 3, padding="same", name="head_conv", **mixed)(features)
    x = head
    for i in range(1, n_pairs + 1):
        x = ERB(width, compact=compact, name=f"pair{i}_erb", **mixed)(x)
        x = layers.LeakyReLU(LEAKY_SLOPE, name=f"pair{i}_act", **mixed)(x)
        x = HFAB(width, mid_width, compact=compact, name=f"pair{i}_hfab", **mixed)(x)
        if use_gdfn:
            x = GDFN(width, name=f"pair{i}_gdfn", **mixed)(x)
    x = layers.Add(name="long_skip", **mixed)([head, x])
    x = layers.Conv2D(FACTOR * FACTOR, 3, padding="same", kernel_initializer="zeros", name="tail_conv", **mixed)(x)
    x = DepthToSpace(FACTOR, name="depth_to_space", **mixed)(x)
    sr = layers.Add(name="sr", dtype="float32")([x, global_skip_of(lr, global_skip)])
    name = f"mrsisr_w{width}_m{mid_width}_p{n_pairs}" + ("_gdfn" if use_gdfn else "") + ("_guided" if guided else "")
    name += "" if global_skip == "kspace" else f"_{global_skip}"
    name += "" if guide_entry == "space_to_depth" or not guided else f"_{guide_entry}"
    name += "_compact" if compact else ""
    return keras.Model(inputs, sr, name=name)


def check_positive(builder: str, **values: int) -> None:
    """Raise ValueError, naming ``builder`` and the argument, unless every value is a positive integer."""
    for name, value in values.items():
        if int(value) < 1:
            raise ValueError(f"{builder}: {name} must be a positive integer, got {value!r}")


def check_choice(builder: str, name: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise ValueError, naming ``builder`` and its argument ``name``, unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{builder}: {name} must be one of {choices}, got {value!r}")


def network_inputs(lr_shape: tuple[int, int], guided: bool) -> list[keras.KerasTensor]:
    """The inputs of every mrsisr network: ``lr`` ``(h, w, 1)`` and, when ``guided``, ``guide`` ``(4h, 4w, 1)``."""
    height, wide = (int(s) for s in lr_shape)
    inputs = [keras.Input((height, wide, 1), name="lr")]
    if guided:
        inputs.append(keras.Input((FACTOR * height, FACTOR * wide, 1), name="guide"))
    return inputs


def guide_features(guide: keras.KerasTensor, entry: str, policy: dict) -> keras.KerasTensor:
    """The guide ``(4h, 4w, 1)`` brought to the trunk's grid as ``(h, w, 16)`` features.

    ``space_to_depth`` rearranges each 4x4 block into 16 channels (lossless, no weights); ``strided_conv``
    learns them: two 3x3 convolutions of stride 2 (16 channels, LeakyReLU after the first).
    """
    if entry == "space_to_depth":
        return SpaceToDepth(FACTOR, name="space_to_depth", **policy)(guide)
    channels = FACTOR * FACTOR
    x = layers.Conv2D(channels, 3, strides=2, padding="same", name="guide_conv1", **policy)(guide)
    x = layers.LeakyReLU(LEAKY_SLOPE, name="guide_act1", **policy)(x)
    return layers.Conv2D(channels, 3, strides=2, padding="same", name="guide_conv2", **policy)(x)


def global_skip_of(lr: keras.KerasTensor, kind: str) -> keras.KerasTensor:
    """The low-resolution map interpolated x4, in float32: zero-filled k-space (``kspace``) or ``bilinear``.

    The bilinear interpolation is pixel-area aligned (half-pixel centres), as the k-space one is.
    """
    if kind == "kspace":
        return KSpaceUpsample(FACTOR, name="lr_upsample", dtype="float32")(lr)
    return layers.UpSampling2D(FACTOR, interpolation="bilinear", name="lr_upsample", dtype="float32")(lr)


def count_parameters(model: keras.Model) -> int:
    """Return the number of trainable parameters of ``model``."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def is_guided(model: keras.Model) -> bool:
    """True when ``model`` takes the FLAIR ``guide`` input."""
    return len(model.inputs) == 2


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a model saved with ``model.save(path)`` (``.keras`` format, ``safe_mode`` on).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a ``.keras`` archive, is corrupt, or does not hold an mrsisr network.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise ValueError(f"model file {path} is not a Keras .keras archive (a zip written by model.save)")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for damaged or foreign archives
        raise ValueError(f"model file {path} could not be loaded: {type(error).__name__}: {error}") from error
    check_mrsisr_network(model, path)
    return model


def check_mrsisr_network(model: keras.Model, path: str | os.PathLike) -> None:
    """Raise ValueError, naming the model file ``path``, unless ``model`` has the inputs and output of ours.

    An mrsisr network takes ``lr`` maps of shape (h, w, 1) (and, guided, a ``guide`` of (4h, 4w, 1)) and returns
    one (4h, 4w, 1) map. A Keras model with other inputs, another factor (e.g. x2) or other channels is refused
    here rather than failing later with a shape error that names no file.
    """
    names = [t.name for t in model.inputs]
    if names[:1] != ["lr"] or names[1:] not in ([], ["guide"]) or len(model.outputs) != 1:
        raise ValueError(f"model file {path} is not an mrsisr network: inputs {names}, expected ['lr'(, 'guide')]")
    lr_shape = tuple(model.inputs[0].shape[1:])
    expected = (*(None if side is None else FACTOR * side for side in lr_shape[:2]), 1)
    shapes = {"lr": lr_shape, "output": tuple(model.outputs[0].shape[1:])}
    if len(names) == 2:
        shapes["guide"] = tuple(model.inputs[1].shape[1:])
    if len(lr_shape) != 3 or lr_shape[2] != 1 or any(shapes[k] != expected for k in shapes if k != "lr"):
        raise ValueError(
            f"model file {path} is not an mrsisr x{FACTOR} network: shapes {shapes}, expected lr (h, w, 1) and "
            f"output{' and guide' if len(names) == 2 else ''} (4h, 4w, 1)"
        )


def _check_inputs(lr: np.ndarray, guide: np.ndarray | None, guided: bool) -> tuple[np.ndarray, np.ndarray | None]:
    lr = np.asarray(lr, dtype=np.float32)
    if lr.ndim != 3 or 0 in lr.shape:
        raise ValueError(f"lr must be a non-empty (N, h, w) array of maps, got shape {lr.shape}")
    if not guided:
        return lr, None
    if guide is None:
        raise ValueError("this model is FLAIR-guided: pass guide, an (N, 4h, 4w) array")
    guide = np.asarray(guide, dtype=np.float32)
    expected = (lr.shape[0], FACTOR * lr.shape[1], FACTOR * lr.shape[2])
    if guide.shape != expected:
        raise ValueError(f"guide shape {guide.shape} does not match lr shape {lr.shape}: expected {expected}")
    return lr, guide


def inference_network(model: keras.Model, lr_shape: tuple[int, int]) -> keras.Model:
    """Return ``model`` in its inference form for low-resolution inputs of in-plane shape ``lr_shape``.

    The inference form is FMEN's re-parameterisation: every ERB (those of the trunk and those inside the
    HFABs) becomes the single 3x3 convolution it equals (:meth:`mrsisr.network.layers.ERB.fused_kernel`), which
    cuts the forward pass's arithmetic by more than half. Two more exact folds save element-wise passes: each
    HFAB's last BatchNorm goes into the convolution before it, each GDFN's LayerNorm scale and offset into the
    1x1 convolution after it. The outputs agree with ``model``'s to float32 rounding. The architecture is built
    once per ``(model, lr_shape)`` and cached; the weights are copied from ``model`` on every call, so a model
    trained further is never predicted with stale weights.
    """
    lr_shape = tuple(int(s) for s in lr_shape)
    cached = _INFERENCE.setdefault(model, {})
    if lr_shape not in cached:
        config = model.get_config()
        for layer in config["layers"]:
            if layer["class_name"] == "InputLayer":
                scale = 1 if layer["config"]["name"] == "lr" else FACTOR
                layer["config"]["batch_shape"] = [None, scale * lr_shape[0], scale * lr_shape[1], 1]
            elif layer["class_name"] in ("ERB", "HFAB", "GDFN"):
                layer["config"]["fused"] = True
        cached[lr_shape] = keras.Model.from_config(config)
    network = cached[lr_shape]
    for layer in model.layers:
        _copy_fused_weights(layer, network.get_layer(layer.name))
    return network


def _copy_fused_weights(source: keras.layers.Layer, target: keras.layers.Layer) -> None:
    """Copy the weights of ``source`` into ``target``, fusing ERBs where ``target`` holds the fused form."""
    if isinstance(source, ERB):
        target.set_weights(list(source.fused_kernel()) if target.fused else source.get_weights())
    elif isinstance(source, HFAB):
        parts = ["norm_in", "squeeze", "norm_mid"]
        if target.fused:  # its last BatchNorm lives in excite
            target.excite.set_weights(fold_batchnorm(source.excite, source.norm_out))
        else:
            parts += ["excite", "norm_out"]
        for part in parts:
            getattr(target, part).set_weights(getattr(source, part).get_weights())
        _copy_fused_weights(source.erb, target.erb)
    elif isinstance(source, GDFN) and target.fused:
        target.project_in.set_weights(fold_layernorm(source.norm, source.project_in))
        for part in ("depthwise", "project_out"):
            getattr(target, part).set_weights(getattr(source, part).get_weights())
    else:
        target.set_weights(source.get_weights())


def model_inputs(lr: np.ndarray, guide: np.ndarray | None) -> dict[str, np.ndarray]:
    """The input dictionary of the network for ``(N, h, w)`` arrays."""
    inputs = {"lr": np.asarray(lr, np.float32)[..., None]}
    if guide is not None:
        inputs["guide"] = np.asarray(guide, np.float32)[..., None]
    return inputs


def predict(
    model: keras.Model, lr: np.ndarray, guide: np.ndarray | None = None, batch_size: int = PREDICT_BATCH
) -> np.ndarray:
    """Upscale low-resolution maps x4 with ``model``, in its inference form (:func:`inference_network`).

    Each batch is one call of the network's compiled forward pass (``predict_on_batch``), which spares the
    input pipeline ``keras.Model.predict`` sets up on every call.

    Parameters
    ----------
    model : keras.Model
        A network from :func:`build_model` or :func:`load_model`.
    lr : ndarray, shape (N, h, w)
        Low-resolution maps, any in-plane size (the network is fully convolutional).
    guide : ndarray, shape (N, 4h, 4w), optional
        FLAIR slices; required by a guided model, ignored (may be None) for an unguided one.
    batch_size : int
        Maps per forward pass.

    Returns
    -------
    ndarray, shape (N, 4h, 4w), float32
    """
    lr, guide = _check_inputs(lr, guide, is_guided(model))
    network = inference_network(model, lr.shape[1:])
    inputs = model_inputs(lr, guide)
    batches = [
        network.predict_on_batch({name: array[start : start + batch_size] for name, array in inputs.items()})
        for start in range(0, len(lr), batch_size)
    ]
    return np.concatenate([np.asarray(batch) for batch in batches])[..., 0].astype(np.float32, copy=False)
