"""Custom Keras layers of the super-resolution network (backend-agnostic: ``keras.layers``/``keras.ops`` only).

- :class:`SpaceToDepth` / :class:`DepthToSpace`: lossless rearrangements between an ``(H, W, C)`` image and an
  ``(H/r, W/r, r*r*C)`` one (the channel index is ``(i * r + j) * C + c`` for the pixel ``(r*h + i, r*w + j)``).
- :class:`ERB`: FMEN's edge-enhanced re-parameterisable block in its training form: a 1x1 convolution expanding
  to ``2C`` channels, a 3x3 convolution with an inner residual around it, a 1x1 convolution reducing back to
  ``C`` and an outer residual. Everything is linear, and the expansion has no bias, so the block equals one 3x3
  convolution exactly (zero padding included): :meth:`ERB.fused_kernel` gives it, and ``ERB(fused=True)`` is
  that convolution (FMEN's re-parameterisation, used for inference by :func:`mrsisr.network.model.inference_network`).
  ``ERB(compact=True)`` trains that 3x3 convolution directly, as a residual ``x + conv3x3(x)``: the same
  function class with about a quarter of the block's arithmetic, without FMEN's over-parameterisation.
- :class:`HFAB`: FMEN's high-frequency attention branch: BatchNorm, 3x3 squeeze to a mid width, LeakyReLU, an
  ERB at the mid width, LeakyReLU, BatchNorm, 3x3 excite back, BatchNorm, sigmoid, multiplying the input.
- :class:`GDFN`: Restormer's gated depth-wise feed-forward network with a residual: LayerNorm, 1x1 to
  ``2 * int(2.66 C)`` channels, 3x3 depth-wise convolution, a GELU gate, 1x1 back to ``C``.
- :class:`KSpaceUpsample`: zero-filled k-space upsampling (the global skip of the network).
- :class:`SCPA`: PAN's self-calibrated convolution with pixel attention (the authors' published variant).
- :class:`KSpaceConsistency`: Dong et al.'s k-space data consistency, ``[hr, lr] -> hr`` whose truncation is ``lr``.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
from keras import layers, ops

from mrsisr.maps.kspace import fourier_resample

PACKAGE = "mrsisr"
GDFN_EXPANSION = 2.66  # Restormer's feed-forward expansion factor
LEAKY_SLOPE = 0.1
# moving statistics of the HFAB BatchNorms average the last ~10 batches (Keras' default 0.99: ~100), so they
# keep up with weights that move fast in short trainings at high learning rates
BN_MOMENTUM = 0.9


class _BlockRearrange(layers.Layer):
    """Base of the lossless pixel rearrangements: holds and serialises the block size ``r``."""

    def __init__(self, block_size: int, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def get_config(self):
        return super().get_config() | {"block_size": self.block_size}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpaceToDepth(_BlockRearrange):
    """Rearrange ``(N, H, W, C)`` into ``(N, H/r, W/r, r*r*C)`` without losing anything."""

    def call(self, x):
        r = self.block_size
        _, height, width, channels = ops.shape(x)
        x = ops.reshape(x, (-1, height // r, r, width // r, r, channels))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, height // r, width // r, r * r * channels))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        r = self.block_size
        return (n, None if h is None else h // r, None if w is None else w // r, c * r * r)


@keras.saving.register_keras_serializable(package=PACKAGE)
class DepthToSpace(_BlockRearrange):
    """Rearrange ``(N, H, W, r*r*C)`` into ``(N, r*H, r*W, C)``; the inverse of :class:`SpaceToDepth`."""

    def call(self, x):
        r = self.block_size
        _, height, width, channels = ops.shape(x)
        out_channels = channels // (r * r)
        x = ops.reshape(x, (-1, height, width, r, r, out_channels))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, height * r, width * r, out_channels))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        r = self.block_size
        return (n, None if h is None else h * r, None if w is None else w * r, c // (r * r))


@keras.saving.register_keras_serializable(package=PACKAGE)
class ERB(layers.Layer):
    """FMEN's edge-enhanced re-parameterisable block, ``C`` channels in and out.

    Training form: ``y = x + reduce(expand(x) + conv3x3(expand(x)))`` with ``expand`` a bias-free 1x1
    convolution to ``2C`` channels and ``reduce`` a 1x1 convolution back to ``C``. With ``fused=True`` the
    block is its inference form, the single 3x3 convolution the training form equals (:meth:`fused_kernel`).
    With ``compact=True`` (and not fused) the training form is ``y = x + conv3x3(x)``: that 3x3 convolution
    trained directly, its outer residual kept explicit so that the block starts near the identity.
    """

    def __init__(self, channels: int, fused: bool = False, compact: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.fused, self.compact = int(channels), bool(fused), bool(compact)
        policy = {"dtype": self.dtype_policy}
        if self.fused:
            self.fused_conv = layers.Conv2D(self.channels, 3, padding="same", name="fused3x3", **policy)
        elif self.compact:
            self.conv = layers.Conv2D(self.channels, 3, padding="same", name="conv3x3", **policy)
        else:
            self.expand = layers.Conv2D(2 * self.channels, 1, use_bias=False, name="expand", **policy)
            self.conv = layers.Conv2D(2 * self.channels, 3, padding="same", name="conv3x3", **policy)
            self.reduce = layers.Conv2D(self.channels, 1, name="reduce", **policy)

    def build(self, input_shape):
        if self.fused:
            self.fused_conv.build(input_shape)
            return
        if self.compact:
            self.conv.build(input_shape)
            return
        self.expand.build(input_shape)
        wide = (*input_shape[:-1], 2 * self.channels)
        self.conv.build(wide)
        self.reduce.build(wide)

    def call(self, x):
        if self.fused:
            return self.fused_conv(x)
        if self.compact:
            return x + self.conv(x)
        expanded = self.expand(x)
        return x + self.reduce(expanded + self.conv(expanded))

    def fused_kernel(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the kernel ``(3, 3, C, C)`` and bias ``(C,)`` of the single 3x3 convolution this block equals."""
        if self.fused:
            return tuple(ops.convert_to_numpy(w) for w in (self.fused_conv.kernel, self.fused_conv.bias))
        if self.compact:
            kernel, bias = (ops.convert_to_numpy(w) for w in (self.conv.kernel, self.conv.bias))
            return _with_identity(kernel), bias
        expand = ops.convert_to_numpy(self.expand.kernel)[0, 0]  # (C, 2C)
        conv, conv_bias = (ops.convert_to_numpy(w) for w in (self.conv.kernel, self.conv.bias))
        reduce, reduce_bias = ops.convert_to_numpy(self.reduce.kernel)[0, 0], ops.convert_to_numpy(self.reduce.bias)
        kernel = np.einsum("ce,hwef,fd->hwcd", expand, _with_identity(conv), reduce, optimize=True)  # inner residual
        return _with_identity(kernel), conv_bias @ reduce + reduce_bias  # the outer residual

    def get_config(self):
        return super().get_config() | {"channels": self.channels, "fused": self.fused, "compact": self.compact}


def _with_identity(kernel: np.ndarray) -> np.ndarray:
    """A copy of the 3x3 kernel ``(3, 3, C, C)`` plus the identity at its centre: the kernel of ``x + conv(x)``."""
    kernel = kernel.copy()
    kernel[1, 1] += np.eye(kernel.shape[-1], dtype=kernel.dtype)
    return kernel


@keras.saving.register_keras_serializable(package=PACKAGE)
class HFAB(layers.Layer):
    """FMEN's high-frequency attention branch: a sigmoid mask, computed at ``mid_channels``, times the input.

    ``fused=True`` is the inference form: its ERB fused (:class:`ERB`) and the last BatchNorm folded into the
    ``excite`` convolution before it (:func:`fold_batchnorm`). ``compact=True`` puts its ERB in the compact
    training form.
    """

    def __init__(self, channels: int, mid_channels: int, fused: bool = False, compact: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.mid_channels = int(channels), int(mid_channels)
        self.fused, self.compact = bool(fused), bool(compact)
        self.norm_in = layers.BatchNormalization(momentum=BN_MOMENTUM, name="bn_in", dtype=self.dtype_policy)
        self.squeeze = layers.Conv2D(self.mid_channels, 3, padding="same", name="squeeze", dtype=self.dtype_policy)
        self.erb = ERB(self.mid_channels, fused=self.fused, compact=self.compact, name="erb", dtype=self.dtype_policy)
        self.norm_mid = layers.BatchNormalization(momentum=BN_MOMENTUM, name="bn_mid", dtype=self.dtype_policy)
        self.excite = layers.Conv2D(self.channels, 3, padding="same", name="excite", dtype=self.dtype_policy)
        if not self.fused:  # the inference form folds this BatchNorm into ``excite`` (:func:`fold_batchnorm`)
            self.norm_out = layers.BatchNormalization(momentum=BN_MOMENTUM, name="bn_out", dtype=self.dtype_policy)

    def build(self, input_shape):
        mid = (*input_shape[:-1], self.mid_channels)
        self.norm_in.build(input_shape)
        self.squeeze.build(input_shape)
        self.erb.build(mid)
        self.norm_mid.build(mid)
        self.excite.build(mid)
        if not self.fused:
            self.norm_out.build(input_shape)

    def call(self, x, training=None):
        a = ops.leaky_relu(self.squeeze(self.norm_in(x, training=training)), LEAKY_SLOPE)
        a = self.norm_mid(ops.leaky_relu(self.erb(a), LEAKY_SLOPE), training=training)
        a = self.excite(a)
        if not self.fused:
            a = self.norm_out(a, training=training)
        return x * ops.sigmoid(a)

    def get_config(self):
        return super().get_config() | {
            "channels": self.channels,
            "mid_channels": self.mid_channels,
            "fused": self.fused,
            "compact": self.compact,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class GDFN(layers.Layer):
    """Restormer's gated depth-wise feed-forward network with its residual connection.

    ``fused=True`` is the inference form: the LayerNorm only normalises, its scale and offset folded into the
    1x1 convolution after it (:func:`fold_layernorm`).
    """

    def __init__(self, channels: int, fused: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.fused = int(channels), bool(fused)
        self.hidden = int(GDFN_EXPANSION * self.channels)
        affine = not self.fused
        self.norm = layers.LayerNormalization(
            epsilon=1e-6, center=affine, scale=affine, name="ln", dtype=self.dtype_policy
        )
        self.project_in = layers.Conv2D(2 * self.hidden, 1, name="project_in", dtype=self.dtype_policy)
        self.depthwise = layers.DepthwiseConv2D(3, padding="same", name="dwconv", dtype=self.dtype_policy)
        self.project_out = layers.Conv2D(self.channels, 1, name="project_out", dtype=self.dtype_policy)

    def build(self, input_shape):
        wide = (*input_shape[:-1], 2 * self.hidden)
        self.norm.build(input_shape)
        self.project_in.build(input_shape)
        self.depthwise.build(wide)
        self.project_out.build((*input_shape[:-1], self.hidden))

    def call(self, x):
        gate, value = ops.split(self.depthwise(self.project_in(self.norm(x))), 2, axis=-1)
        return x + self.project_out(ops.gelu(gate, approximate=True) * value)

    def get_config(self):
        return super().get_config() | {"channels": self.channels, "fused": self.fused}


def fold_batchnorm(conv: layers.Conv2D, norm: layers.BatchNormalization) -> list[np.ndarray]:
    """Kernel and bias of the convolution that equals ``norm(conv(x))`` at inference (moving statistics)."""
    kernel, bias = (ops.convert_to_numpy(w) for w in (conv.kernel, conv.bias))
    gamma, beta, mean, variance = (ops.convert_to_numpy(w) for w in norm.get_weights())
    scale = gamma / np.sqrt(variance + norm.epsilon)
    return [kernel * scale, (bias - mean) * scale + beta]


def fold_layernorm(norm: layers.LayerNormalization, conv: layers.Conv2D) -> list[np.ndarray]:
    """Kernel and bias of the 1x1 ``conv`` that equals ``conv(norm(x))`` after a LayerNorm without scale and offset."""
    gamma, beta = (ops.convert_to_numpy(w) for w in (norm.gamma, norm.beta))
    kernel, bias = (ops.convert_to_numpy(w) for w in (conv.kernel, conv.bias))
    return [kernel * gamma[:, None], bias + beta @ kernel[0, 0]]


@functools.lru_cache(maxsize=16)
def _kspace_resampling_matrix(n: int, factor: int) -> np.ndarray:
    columns = fourier_resample(np.eye(n)[:, :, None], (factor * n, 1))[:, :, 0]  # (n, factor*n)
    matrix = columns.T.astype(np.float32)
    matrix.flags.writeable = False
    return matrix


@keras.saving.register_keras_serializable(package=PACKAGE)
class KSpaceUpsample(layers.Layer):
    """Zero-filled k-space (sinc) upsampling by ``factor``, as a fixed separable linear map.

    The same operator as :func:`mrsisr.maps.kspace.fourier_resample`: for an ``(h, w)`` input the output is
    ``A @ x @ B.T`` with constant matrices ``A`` (``factor*h`` x ``h``) and ``B`` (``factor*w`` x ``w``)
    built from that function, so the layer runs under every Keras backend and keeps the pixel-area
    alignment of the study. It has no weights; the matrices follow the input's (static) in-plane size.
    """

    def __init__(self, factor: int, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    @staticmethod
    def resampling_matrix(n: int, factor: int) -> np.ndarray:
        """The ``(factor*n, n)`` matrix of 1D zero-filled k-space upsampling (computed once per size, read-only)."""
        return _kspace_resampling_matrix(int(n), int(factor))

    def call(self, x):
        height, width = int(x.shape[1]), int(x.shape[2])  # static: the model fixes the in-plane size
        rows = ops.convert_to_tensor(self.resampling_matrix(height, self.factor))
        cols = ops.convert_to_tensor(self.resampling_matrix(width, self.factor))
        return ops.einsum("ij,bjkc,lk->bilc", rows, x, cols)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, h * self.factor, w * self.factor, c)

    def get_config(self):
        return super().get_config() | {"factor": self.factor}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SCPA(layers.Layer):
    """PAN's self-calibrated convolution with pixel attention (Zhao et al. 2020), ``C`` channels in and out.

    Two branches at ``C/2`` channels, each opened by a 1x1 convolution and a LeakyReLU: the plain branch is a
    3x3 convolution; the calibrated branch is a pixel-attention convolution, a 3x3 convolution multiplied by
    the sigmoid of a 1x1 convolution of its input (one weight per pixel and channel), followed by a 3x3
    convolution. Both end in a LeakyReLU; their concatenation is taken back to ``C`` by a 1x1 convolution and
    added to the input.
    """

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        half = max(1, self.channels // 2)
        self.half = half
        policy = {"dtype": self.dtype_policy}
        self.open_plain = layers.Conv2D(half, 1, use_bias=False, name="open_plain", **policy)
        self.open_calibrated = layers.Conv2D(half, 1, use_bias=False, name="open_calibrated", **policy)
        self.plain = layers.Conv2D(half, 3, padding="same", use_bias=False, name="plain3x3", **policy)
        self.attention = layers.Conv2D(half, 1, name="attention1x1", **policy)
        self.value = layers.Conv2D(half, 3, padding="same", use_bias=False, name="value3x3", **policy)
        self.calibrated = layers.Conv2D(half, 3, padding="same", use_bias=False, name="calibrated3x3", **policy)
        self.merge = layers.Conv2D(self.channels, 1, use_bias=False, name="merge", **policy)

    def build(self, input_shape):
        half = (*input_shape[:-1], self.half)
        self.open_plain.build(input_shape)
        self.open_calibrated.build(input_shape)
        for conv in (self.plain, self.attention, self.value, self.calibrated):
            conv.build(half)
        self.merge.build((*input_shape[:-1], 2 * self.half))

    def call(self, x):
        plain = ops.leaky_relu(self.open_plain(x), LEAKY_SLOPE)
        plain = ops.leaky_relu(self.plain(plain), LEAKY_SLOPE)
        calibrated = ops.leaky_relu(self.open_calibrated(x), LEAKY_SLOPE)
        attended = self.value(calibrated) * ops.sigmoid(self.attention(calibrated))
        calibrated = ops.leaky_relu(self.calibrated(attended), LEAKY_SLOPE)
        return x + self.merge(ops.concatenate([plain, calibrated], axis=-1))

    def get_config(self):
        return super().get_config() | {"channels": self.channels}


@functools.lru_cache(maxsize=16)
def _kspace_consistency_matrices(n: int, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """``(T, A)`` of 1D data consistency: ``T`` (n, factor*n) truncates, ``A = P (T P)^-1`` (factor*n, n)."""
    truncate = fourier_resample(np.eye(factor * n)[:, :, None], (n, 1))[:, :, 0].T.astype(np.float64)
    enlarge = _kspace_resampling_matrix(n, factor).astype(np.float64)
    lift = enlarge @ np.linalg.inv(truncate @ enlarge)  # the gain of T P is 1/2 at Nyquist: undo it
    matrices = truncate.astype(np.float32), lift.astype(np.float32)
    for matrix in matrices:
        matrix.flags.writeable = False
    return matrices


@keras.saving.register_keras_serializable(package=PACKAGE)
class KSpaceConsistency(layers.Layer):
    """Dong et al.'s k-space data consistency as a layer: ``[hr, lr] -> hr`` with its central k-space made ``lr``'s.

    The separable form of :func:`mrsisr.mrsi.consistency.enforce_data_consistency`: with ``T`` the 1D
    zero-filled k-space truncation (``factor*n`` -> ``n``, :func:`mrsisr.maps.kspace.fourier_resample`) and
    ``P`` its enlargement (:class:`KSpaceUpsample`), the output is ``hr + A (lr - T hr T') A'`` along both
    in-plane axes with ``A = P (T P)^-1``, so that truncating the output gives ``lr`` back exactly and the
    frequencies beyond ``lr``'s are those of ``hr``. Fixed matrices, no weights, every Keras backend.
    """

    def __init__(self, factor: int, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def _matrices(self, lr_height: int, lr_width: int) -> tuple:
        rows, cols = (_kspace_consistency_matrices(int(n), self.factor) for n in (lr_height, lr_width))
        return tuple(ops.convert_to_tensor(m) for m in (*rows, *cols))

    def truncate(self, hr):
        """The separable k-space truncation ``T hr T'`` of ``(N, H, W, C)`` maps to ``(N, H/factor, W/factor, C)``."""
        t_rows, _, t_cols, _ = self._matrices(int(hr.shape[1]) // self.factor, int(hr.shape[2]) // self.factor)
        return ops.einsum("ij,bjkc,lk->bilc", t_rows, hr, t_cols)

    def call(self, inputs):
        hr, lr = inputs
        _, a_rows, _, a_cols = self._matrices(int(lr.shape[1]), int(lr.shape[2]))  # static in-plane size
        return hr + ops.einsum("ij,bjkc,lk->bilc", a_rows, lr - self.truncate(hr), a_cols)

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self):
        return super().get_config() | {"factor": self.factor}
