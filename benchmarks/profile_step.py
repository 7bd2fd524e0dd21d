"""Where the time of one training step goes: per-block timing of the network's training step (TensorFlow backend).

The timing scheme: one eager forward pass records every leaf Keras layer the network calls (convolutions,
normalisations, rearrangements, the k-space skip, element-wise layers) with its input shapes. Each distinct
(layer kind, weights' shapes, input shapes) is then timed alone, forward and backward (the gradients a training
step needs: the layer's weights and, except where the input is a model input, its input) as a ``tf.function``
on random tensors of those shapes, median of ``repeats`` runs, and counted as often as the network calls it.
Two element-wise pieces of the blocks that are no Keras layers are timed the same way: HFAB's attention multiply
(``x * sigmoid(a)``) and GDFN's gate (``gelu(gate) * value``). The optimizer (Adam with the profile's clipping)
is timed applying random gradients to the model's weights, the input pipeline as :class:`EpochBatches` making
one batch, and validation as the forward pass of the validation maps, per training step.

The whole step is ``model.fit`` on a few batches as arrays (the way :func:`mrsisr.network.train.train` runs it),
divided by the number of steps; what the parts leave unexplained (residual adds, activations outside layers,
the loss, Keras' step overhead) is the row ``other``. Shares are of the whole step plus input pipeline plus
validation (one epoch's time divided by its steps).

By default the step is issue 15's recipe (FMEN's expanded ERBs, 24 maps per batch); the demo profile's recipe
is ``--erb-form compact --batch-size 8``.

Usage: ``python benchmarks/profile_step.py [--erb-form compact] [--batch-size 8] [--output step_profile.json]``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mrsisr.network.layers import GDFN, HFAB, DepthToSpace, KSpaceUpsample, SpaceToDepth
from mrsisr.network.model import ERB_FORMS, build_model, model_inputs
from mrsisr.network.train import EpochBatches, TrainConfig, compile_model
from mrsisr.stages.training import train_config
from mrsisr.study.atomic import save_json
from mrsisr.study.profiles import load_profile, stage_parameters

# the demo model and data, at issue 15's batch
DEMO = {"batch_size": 24, "lr_size": 32, "val_maps": 400, "train_maps": 1700}
# layers that read a model input: no gradient flows into their input
INPUT_SIDE = ("space_to_depth", "concat_guide", "lr_upsample", "head_conv")
CATEGORIES = {
    "Conv2D3": "3x3 convolutions",
    "Conv2D1": "1x1 convolutions",
    "DepthwiseConv2D": "depth-wise convolution",
    "BatchNormalization": "BatchNorm",
    "LayerNormalization": "LayerNorm",
    "SpaceToDepth": "space-to-depth / depth-to-space",
    "DepthToSpace": "space-to-depth / depth-to-space",
    "KSpaceUpsample": "k-space skip",
    "LeakyReLU": "element-wise layers (LeakyReLU, Add, Concatenate)",
    "Add": "element-wise layers (LeakyReLU, Add, Concatenate)",
    "Concatenate": "element-wise layers (LeakyReLU, Add, Concatenate)",
}
LEAVES = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.LeakyReLU,
    keras.layers.Add,
    keras.layers.Concatenate,
    SpaceToDepth,
    DepthToSpace,
    KSpaceUpsample,
)


def _shapes(inputs) -> tuple:
    return tuple(tuple(int(d) for d in t.shape) for t in (inputs if isinstance(inputs, list | tuple) else [inputs]))


def leaf_calls(model: keras.Model, inputs: dict) -> list[tuple[keras.layers.Layer, tuple]]:
    """Every leaf layer call of one eager forward pass of ``model`` on ``inputs``, with its input shapes."""
    calls, originals = [], {cls: cls.call for cls in LEAVES}

    def recorder(cls):
        def call(self, x, *args, **kwargs):
            if type(self) is cls:
                calls.append((self, _shapes(x)))
            return originals[cls](self, x, *args, **kwargs)

        return call

    try:
        for cls in LEAVES:
            cls.call = recorder(cls)
        model(inputs, training=True)
    finally:
        for cls, original in originals.items():
            cls.call = original
    return calls


def _median_seconds(function: Callable[[], object], repeats: int) -> float:
    function()  # trace
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_flops_per_s(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 matmul rate of numpy on this machine (FLOP/s), ``n x n`` by ``n x n``."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    a @ b
    best = min(timed_seconds(lambda: a @ b) for _ in range(repeats))
    return 2.0 * n**3 / best


def timed_seconds(function: Callable[[], object]) -> float:
    """Wall-clock seconds of one call of ``function``."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def convolution_ceiling(batch_size: int, width: int, repeats: int = 5) -> dict:
    """How fast the trunk's busiest kernel runs alone, against numpy's matmul measured just before.

    A 3x3 convolution of ``width`` to ``width`` channels on ``(batch_size, 32, 32, width)``, forward and backward
    (gradients of its kernel and its input, 3x the forward FLOPs), timed as :func:`op_seconds` times the layers.
    No whole training step can use the machine better than this kernel, its densest part, does.

    Returns
    -------
    dict
        ``conv_gflop_per_s``, ``matmul_gflop_per_s`` and ``conv_fraction_of_matmul``, with ``batch_size`` and
        ``width``.
    """
    matmul = matmul_flops_per_s()
    conv = keras.layers.Conv2D(width, 3, padding="same")
    shape = (batch_size, DEMO["lr_size"], DEMO["lr_size"], width)
    conv.build(shape)
    seconds = op_seconds(lambda xs: conv(xs[0]), (shape,), conv.trainable_weights, True, repeats)
    flops = 3 * 2 * math.prod(shape) * 9 * width
    return {
        "batch_size": batch_size,
        "width": width,
        "conv_gflop_per_s": flops / seconds / 1e9,
        "matmul_gflop_per_s": matmul / 1e9,
        "conv_fraction_of_matmul": flops / seconds / matmul,
    }


def op_seconds(forward: Callable, shapes: tuple, weights: list, input_grad: bool, repeats: int) -> float:
    """Median seconds of ``forward`` on random inputs of ``shapes`` and its backward pass (weights, inputs)."""
    rng = np.random.default_rng(0)
    xs = [tf.constant(rng.random(s, dtype=np.float32)) for s in shapes]
    variables = [w.value for w in weights]
    dy = tf.constant(rng.random(_shapes(forward(xs))[0], dtype=np.float32))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(xs)
            y = forward(xs)
        return tape.gradient(y, variables + (xs if input_grad else []), output_gradients=dy)

    @tf.function
    def forward_only():
        return forward(xs)

    return _median_seconds(step if (variables or input_grad) else forward_only, repeats)


def _category(layer: keras.layers.Layer) -> str:
    name = type(layer).__name__
    if name == "Conv2D":
        name += str(layer.kernel_size[0])
    return CATEGORIES[name]


def _layer_forward(layer: keras.layers.Layer, multiple: bool) -> Callable:
    def forward(xs):
        out = layer(xs if multiple else xs[0], training=True)
        return tf.cast(out, tf.float32)

    return forward


def layer_table(model: keras.Model, inputs: dict, repeats: int) -> dict[str, float]:
    """Seconds per training step of each block category, from the leaf layers and the blocks' own element-wise ops."""
    totals: dict[str, float] = defaultdict(float)
    cache: dict[tuple, float] = {}
    for layer, shapes in leaf_calls(model, inputs):
        input_grad = layer.name not in INPUT_SIDE
        key = (type(layer).__name__, tuple(tuple(w.shape) for w in layer.weights), shapes, input_grad)
        if key not in cache:
            multiple = isinstance(layer, keras.layers.Add | keras.layers.Concatenate)
            cache[key] = op_seconds(
                _layer_forward(layer, multiple), shapes, layer.trainable_weights, input_grad, repeats
            )
        totals[_category(layer)] += cache[key]
    batch = inputs["lr"].shape[0]
    for block in model.layers:
        if isinstance(block, HFAB):
            shape = (batch, DEMO["lr_size"], DEMO["lr_size"], block.channels)
            attention = op_seconds(lambda xs: xs[0] * tf.sigmoid(xs[1]), (shape, shape), [], True, repeats)
            totals["attention multiply (x * sigmoid)"] += attention
        elif isinstance(block, GDFN):
            shape = (batch, DEMO["lr_size"], DEMO["lr_size"], block.hidden)
            gate = op_seconds(lambda xs: tf.nn.gelu(xs[0], approximate=True) * xs[1], (shape, shape), [], True, repeats)
            totals["GDFN gate (gelu * value)"] += gate
    return dict(totals)


def random_set(n: int, lr_size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` random maps: ``(lr, guide, hr)`` of in-plane sizes ``lr_size`` and ``4 * lr_size``."""
    rng = np.random.default_rng(seed)
    hr_size = 4 * lr_size
    return (
        rng.random((n, lr_size, lr_size), dtype=np.float32),
        rng.random((n, hr_size, hr_size), dtype=np.float32),
        rng.random((n, hr_size, hr_size), dtype=np.float32),
    )


def demo_config(batch_size: int) -> TrainConfig:
    """The demo profile's training recipe (learning rate, schedule, clipping, guide randomisation) at ``batch_size``."""
    return train_config(stage_parameters("training", load_profile("demo", {"batch_size": batch_size})))


def profile_training_step(batch_size: int = 24, steps: int = 6, repeats: int = 5, erb_form: str = "expanded") -> dict:
    """Time one training step of the demo model and its parts; see the module docstring.

    Returns
    -------
    dict
        ``step_seconds`` (one ``fit`` step), ``input_seconds`` and ``validation_seconds`` (per step), ``rows``: a
        list of ``{"block", "seconds", "share"}`` (shares of the step plus input plus validation), ``batch_size``,
        ``erb_form`` and ``convolution_ceiling`` (:func:`convolution_ceiling`).
    """
    config = demo_config(batch_size)
    model = build_model(erb_form=erb_form)
    lr, guide, hr = random_set(steps * batch_size, DEMO["lr_size"], seed=0)
    batches = EpochBatches(lr, guide, hr, config)
    compile_model(model, config, len(batches))
    inputs, target, _ = batches.epoch_arrays(0)
    model.fit(inputs, target, batch_size=batch_size, epochs=1, verbose=0, steps_per_epoch=1)  # trace
    step = _median_seconds(
        lambda: model.fit(inputs, target, batch_size=batch_size, epochs=1, verbose=0), max(1, repeats // 2)
    ) / len(batches)
    input_s = _median_seconds(lambda: batches[0], repeats)
    val = model_inputs(*random_set(2 * batch_size, DEMO["lr_size"], seed=1)[:2])
    per_val_map = _median_seconds(lambda: model.predict(val, batch_size=batch_size, verbose=0), 3) / (2 * batch_size)
    steps_per_epoch = DEMO["train_maps"] / batch_size
    validation_s = per_val_map * DEMO["val_maps"] / steps_per_epoch
    parts = layer_table(model, model_inputs(lr[:batch_size], guide[:batch_size]), repeats)
    gradients = [
        tf.constant(np.random.default_rng(2).normal(0, 1e-3, w.shape).astype(np.float32))
        for w in model.trainable_weights
    ]
    optimizer = tf.function(lambda: model.optimizer.apply(gradients, model.trainable_weights))
    parts["optimizer (Adam, global-norm clipping)"] = _median_seconds(optimizer, repeats)
    parts["other (residual adds, activations in blocks, loss, step overhead)"] = step - sum(parts.values())
    parts["input pipeline (batch, augmentation, guide randomisation)"] = input_s
    parts["validation (per training step)"] = validation_s
    whole = step + input_s + validation_s
    rows = [{"block": k, "seconds": v, "share": v / whole} for k, v in sorted(parts.items(), key=lambda kv: -kv[1])]
    return {
        "convolution_ceiling": convolution_ceiling(batch_size, model.get_layer("head_conv").filters, repeats),
        "batch_size": batch_size,
        "erb_form": erb_form,
        "step_seconds": step,
        "input_seconds": input_s,
        "validation_seconds": validation_s,
        "rows": rows,
    }


def markdown_table(profile: dict) -> str:
    """The profile as a Markdown table (block, ms per step, share)."""
    lines = ["| block | ms per step | share |", "|---|---:|---:|"]
    lines += [f"| {r['block']} | {1e3 * r['seconds']:.1f} | {100 * r['share']:.1f} % |" for r in profile["rows"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="benchmarks/results/step_profile.json")
    parser.add_argument("--batch-size", type=int, default=DEMO["batch_size"])
    parser.add_argument("--erb-form", default="expanded", choices=ERB_FORMS, help="the ERBs' training form")
    args = parser.parse_args()
    profile = profile_training_step(args.batch_size, erb_form=args.erb_form)
    save_json(Path(args.output), profile)
    print(markdown_table(profile))
    ceiling = profile["convolution_ceiling"]
    print(
        f"3x3 convolution {ceiling['width']} -> {ceiling['width']} channels alone, forward and backward: "
        f"{ceiling['conv_gflop_per_s']:.0f} GFLOP/s, {ceiling['conv_fraction_of_matmul']:.0%} of numpy's matmul "
        f"({ceiling['matmul_gflop_per_s']:.0f} GFLOP/s)"
    )


if __name__ == "__main__":
    main()
