"""Peer networks and the registry of every network the study compares, built the same way as the main one.

Every builder returns a ``keras.Model`` with the inputs of :func:`mrsisr.network.model.build_model`
(``lr`` ``(h, w, 1)`` and the FLAIR ``guide`` ``(4h, 4w, 1)``) and one ``(4h, 4w, 1)`` output, so the same
training (:func:`mrsisr.network.train.train`), saving, :func:`~mrsisr.network.model.load_model` and
:func:`~mrsisr.network.model.predict` serve them all.

- :func:`build_authors_model`: the authors' published variant (``MorEsm/SR-MRSI``, read for its design, no code
  taken): a 1x1 and a 3x3 head at 32 filters, 5 pairs of PAN's SCPA and FMEN's HFAB with a long skip, a
  GDFN after the trunk on the concatenation of head and trunk, concatenations of further 1x1 + 3x3
  convolutions, pixel shuffle x4, a 1x1 convolution and a sigmoid. How their 32x32 map meets the 128x128
  FLAIR is not published: the guide enters as in ours, by space-to-depth. Their code's SCPA multiplies
  feature matrices, which is not PAN's pixel attention; ours is PAN's (:class:`~mrsisr.network.layers.SCPA`).
- :func:`build_dual_encoder_unet`: a UNet with two encoders in the manner of Dong et al. (MICCAI 2022,
  ``dsy199610/Multiscale-SR-MRSI-adjustable-sharpness``, read for its design, no code taken), in 2D: the map,
  upsampled to the guide's grid, feeds one encoder; the map with the FLAIR feeds the other; the decoder
  fuses both encoders' features at every scale; a sigmoid output, and optionally Dong's k-space data
  consistency (:class:`~mrsisr.network.layers.KSpaceConsistency`).
- :data:`VARIANTS`: name -> :class:`Variant` (builder, its arguments, a one-line description) for every
  ablation and peer row of the study.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import keras
from keras import layers

from mrsisr.network.layers import GDFN, HFAB, SCPA, DepthToSpace, KSpaceConsistency, KSpaceUpsample
from mrsisr.network.model import (
    DTYPE_POLICIES,
    FACTOR,
    GUIDE_ENTRIES,
    LR_SIZE,
    build_model,
    check_choice,
    check_positive,
    guide_features,
    network_inputs,
)

AUTHORS_WIDTH = 32
AUTHORS_PAIRS = 5
# The authors give 32 filters and 5 pairs, not the width inside HFAB's attention branch (their code's HFAB does
# not run as published): 43 brings the variant to about our network's parameter count (627,367 vs 636,296).
AUTHORS_MID_WIDTH = 43
UNET_FEATURES = 13
UNET_LEVELS = 3


def build_authors_model(
    width: int = AUTHORS_WIDTH,
    mid_width: int = AUTHORS_MID_WIDTH,
    n_pairs: int = AUTHORS_PAIRS,
    guided: bool = True,
    guide_entry: str = "space_to_depth",
    lr_shape: tuple[int, int] = (LR_SIZE, LR_SIZE),
    dtype_policy: str = "float32",
) -> keras.Model:
    """Build the authors' published variant: SCPA + HFAB pairs, a GDFN after the trunk, pixel shuffle, sigmoid.

    Parameters
    ----------
    width : int
        Filters of the head, the trunk and the tail convolutions (the authors: 32).
    mid_width : int
        Channels inside each HFAB attention branch.
    n_pairs : int
        SCPA + HFAB pairs in the trunk (the authors: 5).
    guided : bool
        Take the FLAIR guide as a second input.
    guide_entry : {"space_to_depth", "strided_conv"}
        How the guide reaches the 32x32 grid (:func:`mrsisr.network.model.guide_features`).
    lr_shape : tuple of int
        In-plane shape ``(h, w)`` of the low-resolution input.
    dtype_policy : {"float32", "mixed_bfloat16"}
        Keras dtype policy of the learned layers; the sigmoid output is float32.

    Returns
    -------
    keras.Model
        Inputs ``lr`` (and ``guide``), output ``sr`` ``(4h, 4w, 1)`` in [0, 1].
    """
    check_positive("build_authors_model", width=width, mid_width=mid_width, n_pairs=n_pairs)
    check_choice("build_authors_model", "dtype_policy", dtype_policy, DTYPE_POLICIES)
    check_choice("build_authors_model", "guide_entry", guide_entry, GUIDE_ENTRIES)
    mixed = {"dtype": dtype_policy}
    inputs = network_inputs(lr_shape, guided)
    features = inputs[0]
    if guided:
        features = layers.Concatenate(name="concat_guide", **mixed)(
            [inputs[0], guide_features(inputs[1], guide_entry, mixed)]
        )
    head = _conv_pair(features, width, "head", mixed)
    x = head
    for i in range(1, n_pairs + 1):
        x = SCPA(width, name=f"pair{i}_scpa", **mixed)(x)
        x = HFAB(width, mid_width, name=f"pair{i}_hfab", **mixed)(x)
    x = layers.Add(name="long_skip", **mixed)([head, x])
    trunk = _conv_pair(x, width, "trunk_out", mixed)
    stack = layers.Concatenate(name="concat1", **mixed)([head, trunk])
    refined = layers.Conv2D(width, 3, padding="same", name="gdfn_out", **mixed)(
        GDFN(2 * width, name="gdfn", **mixed)(stack)
    )
    stack = layers.Concatenate(name="concat2", **mixed)([stack, refined])
    stack = layers.Concatenate(name="concat3", **mixed)([stack, _conv_pair(refined, width, "tail", mixed)])
    x = DepthToSpace(FACTOR, name="pixel_shuffle", **mixed)(stack)
    x = layers.Conv2D(1, 1, name="out_conv", **mixed)(x)
    sr = layers.Activation("sigmoid", name="sr", dtype="float32")(x)
    name = f"authors_w{width}_m{mid_width}_p{n_pairs}" + ("_guided" if guided else "")
    return keras.Model(inputs, sr, name=name)


def _conv_pair(x: keras.KerasTensor, width: int, name: str, policy: dict) -> keras.KerasTensor:
    """A 1x1 then a 3x3 convolution to ``width`` channels, linear (the authors' head and tail unit)."""
    x = layers.Conv2D(width, 1, name=f"{name}_conv1x1", **policy)(x)
    return layers.Conv2D(width, 3, padding="same", name=f"{name}_conv3x3", **policy)(x)


def build_dual_encoder_unet(
    features: int = UNET_FEATURES,
    levels: int = UNET_LEVELS,
    data_consistency: bool = False,
    lr_shape: tuple[int, int] = (LR_SIZE, LR_SIZE),
    dtype_policy: str = "float32",
) -> keras.Model:
    """Build a two-encoder UNet in the manner of Dong et al. (MICCAI 2022), in 2D at the guide's resolution.

    The map is upsampled x4 by zero-filled k-space interpolation; one encoder takes it alone, the other takes
    it with the FLAIR guide. Each encoder has ``levels`` max-pooled stages (``features * 2**k`` channels) and a
    bottleneck; the decoder upsamples (bilinear x2, then a 3x3 convolution), concatenates both encoders'
    features of that scale and applies a convolution unit. A unit is two bias-free 3x3 convolutions, each
    followed by instance normalisation and a per-channel PReLU (Dong's). A 1x1 convolution and a sigmoid give
    the map; with ``data_consistency`` its central k-space is then replaced by the input's.

    Parameters
    ----------
    features : int
        Channels of the first encoder stage; the default gives about 650,000 trainable parameters.
    levels : int
        Pooling stages per encoder; the guide's sides must be multiples of ``2**levels``.
    data_consistency : bool
        End with :class:`~mrsisr.network.layers.KSpaceConsistency` (the output's truncation is the input).
    lr_shape : tuple of int
        In-plane shape ``(h, w)`` of the low-resolution input.
    dtype_policy : {"float32", "mixed_bfloat16"}
        Keras dtype policy of the learned layers; the upsampling, the output and data consistency are float32.

    Returns
    -------
    keras.Model
        Inputs ``lr`` and ``guide``, output ``sr`` ``(4h, 4w, 1)``.
    """
    check_positive("build_dual_encoder_unet", features=features, levels=levels)
    check_choice("build_dual_encoder_unet", "dtype_policy", dtype_policy, DTYPE_POLICIES)
    step = 2**levels
    if any(FACTOR * int(side) % step for side in lr_shape):
        raise ValueError(
            f"build_dual_encoder_unet: the guide's sides {tuple(FACTOR * int(s) for s in lr_shape)} must be "
            f"multiples of 2**levels = {step}"
        )
    mixed = {"dtype": dtype_policy}
    lr, guide = network_inputs(lr_shape, guided=True)
    upsampled = KSpaceUpsample(FACTOR, name="lr_upsample", dtype="float32")(lr)
    with_guide = layers.Concatenate(name="concat_guide", **mixed)([upsampled, guide])
    map_skips = _encoder(upsampled, features, levels, "map", mixed)
    guide_skips = _encoder(with_guide, features, levels, "guide", mixed)
    x = layers.Concatenate(name="bottleneck_fuse", **mixed)([map_skips[-1], guide_skips[-1]])
    for level in range(levels - 1, -1, -1):
        width = features * 2**level
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"dec{level}_up", **mixed)(x)
        x = layers.Conv2D(width, 3, padding="same", name=f"dec{level}_upconv", **mixed)(x)
        x = layers.Concatenate(name=f"dec{level}_fuse", **mixed)([map_skips[level], guide_skips[level], x])
        x = _unit(x, width, f"dec{level}", mixed)
    x = layers.Conv2D(1, 1, name="out_conv", **mixed)(x)
    sr = layers.Activation("sigmoid", name="sigmoid" if data_consistency else "sr", dtype="float32")(x)
    if data_consistency:
        sr = KSpaceConsistency(FACTOR, name="sr", dtype="float32")([sr, lr])
    name = f"dual_unet_f{features}_l{levels}" + ("_dc" if data_consistency else "")
    return keras.Model([lr, guide], sr, name=name)


def _encoder(x: keras.KerasTensor, features: int, levels: int, name: str, policy: dict) -> list[keras.KerasTensor]:
    """The features of each encoder stage, full resolution first, the bottleneck last."""
    skips = []
    for level in range(levels + 1):
        if level:
            x = layers.MaxPooling2D(2, name=f"{name}_pool{level}", **policy)(x)
        x = _unit(x, features * 2**level, f"{name}_enc{level}", policy)
        skips.append(x)
    return skips


def _unit(x: keras.KerasTensor, width: int, name: str, policy: dict) -> keras.KerasTensor:
    """Two (bias-free 3x3 convolution, instance normalisation, per-channel PReLU) steps."""
    for i in (1, 2):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv{i}", **policy)(x)
        x = layers.GroupNormalization(groups=width, epsilon=1e-5, name=f"{name}_norm{i}", **policy)(x)
        x = layers.PReLU(shared_axes=[1, 2], name=f"{name}_prelu{i}", **policy)(x)
    return x


@dataclass(frozen=True)
class Variant:
    """One row of the comparison: how to build it, and what it is.

    Attributes
    ----------
    builder : callable
        A builder of this module or :func:`mrsisr.network.model.build_model`.
    kwargs : dict
        Its arguments for this row (the full-size network).
    description : str
        One line for tables and captions.
    tiny : dict
        Arguments merged over ``kwargs`` for a tiny network of the same design (the ``ci`` profile's tests).
    recipe : tuple of str
        Training-stage parameters that the builder takes from the study's recorded recipe rather than from the
        row (``erb_form`` for the rows of :func:`~mrsisr.network.model.build_model`: the study's network is
        trained in the study's form); the peers take none.
    """

    builder: Callable[..., keras.Model]
    kwargs: dict
    description: str
    tiny: dict = field(default_factory=dict)
    recipe: tuple[str, ...] = ()

    @property
    def guided(self) -> bool:
        """True when the row's network takes the FLAIR guide: every builder's default, unless ``guided=False``."""
        return bool(self.kwargs.get("guided", True))

    def build(self, tiny: bool = False, **overrides) -> keras.Model:
        """Build the network of this row (its tiny form when ``tiny``); ``overrides`` (e.g. ``erb_form``) win."""
        return self.builder(**(self.kwargs | (self.tiny if tiny else {}) | overrides))


_TINY_MAIN = {"width": 8, "mid_width": 4, "n_pairs": 2}
#: What the rows of :func:`~mrsisr.network.model.build_model` take from the training stage's recorded recipe.
STUDY_RECIPE = ("erb_form",)


def _study_row(kwargs: dict, description: str, tiny: dict = _TINY_MAIN) -> Variant:
    """A row of the study's own builder, trained in the study's ERB form."""
    return Variant(build_model, kwargs, description, tiny, recipe=STUDY_RECIPE)


VARIANTS: dict[str, Variant] = {
    "main": _study_row({}, "the study's network: 8 HFAB pairs with GDFN, FLAIR by space-to-depth"),
    "no_guide": _study_row({"guided": False}, "without the FLAIR guide (map only)"),
    "no_gdfn": _study_row({"use_gdfn": False}, "without the GDFNs"),
    "pairs4": _study_row({"n_pairs": 4}, "4 HFAB pairs instead of 8", _TINY_MAIN | {"n_pairs": 1}),
    "bilinear_skip": _study_row({"global_skip": "bilinear"}, "bilinear instead of k-space global skip"),
    "strided_guide": _study_row(
        {"guide_entry": "strided_conv"}, "FLAIR enters by a strided-convolution encoder instead of space-to-depth"
    ),
    "authors": Variant(
        build_authors_model,
        {},
        "the authors' published design: 5 SCPA + HFAB pairs at 32 filters, GDFN, pixel shuffle, sigmoid",
        {"width": 8, "mid_width": 4, "n_pairs": 1},
    ),
    "dual_unet": Variant(
        build_dual_encoder_unet, {}, "two-encoder UNet (map; map + FLAIR) after Dong et al. 2022", {"features": 2}
    ),
    "dual_unet_dc": Variant(
        build_dual_encoder_unet,
        {"data_consistency": True},
        "the two-encoder UNet with k-space data consistency",
        {"features": 2},
    ),
}
