"""Benchmark the super-resolution network on this machine and write the numbers as JSON.

Measures, for the default architecture (``mrsisr.network.model.build_model()``), under each dtype policy
(``float32``, and ``mixed_bfloat16``: bfloat16 compute with float32 weights):

- training throughput (maps/s) of ``model.fit`` at batch 24 on random 32x32 / 128x128 arrays (after a warm-up);
- inference throughput (maps/s) of ``mrsisr.network.model.predict`` at batch 32 (the inference form, every ERB fused
  into one 3x3 convolution);
- FLOPs per map, counted analytically from the layer shapes: 2 x multiply-adds of every convolution
  (``2 * H * W * k * k * C_in / groups * C_out``); element-wise operations, normalisations and the
  upsampling are left out (under 2 % of the total). One training step is counted as 3x the forward pass
  (forward + two backward products), the usual approximation;
- the float32 matmul rate of numpy (``n x n @ n x n``, best of several runs) measured in the same run, and the
  achieved training and inference FLOP/s as fractions of it;
- the speed-ups of ``mixed_bfloat16`` over ``float32``, as ratios measured in the same run.

Usage: ``python benchmarks/benchmark_model.py [--output benchmarks/results/model_benchmark.json]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import keras
import numpy as np

from mrsisr.network.model import DTYPE_POLICIES, build_model, count_parameters, inference_network, predict
from mrsisr.study.atomic import save_json

TRAIN_BATCH = 24
PREDICT_BATCH = 32


def forward_flops(model: keras.Model) -> int:
    """Floating-point operations of one forward pass for one map (convolutions only, 2 per multiply-add).

    Every convolution of the network runs on the low-resolution grid of the ``lr`` input, and a kernel of shape
    ``(k, k, C_in, C_out)`` (or ``(k, k, C, 1)`` depth-wise) costs ``2 * H * W * prod(kernel.shape)``.
    """
    _, height, width, _ = model.inputs[0].shape
    kernels = [w for w in model.trainable_weights if w.name == "kernel"]
    return int(sum(2 * height * width * int(np.prod(k.shape)) for k in kernels))


def matmul_flops_per_s(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 matmul rate of numpy on this machine (FLOP/s)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2.0 * n**3 / best


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def random_batch(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.random((n, 32, 32), dtype=np.float32),
        rng.random((n, 128, 128), dtype=np.float32),
        rng.random((n, 128, 128), dtype=np.float32),
    )


def training_maps_per_s(model: keras.Model, steps: int, jit_compile: bool) -> float:
    lr, guide, hr = random_batch(steps * TRAIN_BATCH)
    model.compile(keras.optimizers.Adam(1e-4), loss=keras.losses.LogCosh(), jit_compile=jit_compile)
    inputs = {"lr": lr[..., None], "guide": guide[..., None]}
    model.fit(inputs, hr[..., None], batch_size=TRAIN_BATCH, epochs=1, verbose=0, steps_per_epoch=2)  # warm-up
    seconds = _timed(lambda: model.fit(inputs, hr[..., None], batch_size=TRAIN_BATCH, epochs=1, verbose=0))
    return len(lr) / seconds


def inference_maps_per_s(model: keras.Model, n: int) -> float:
    lr, guide, _ = random_batch(n, seed=1)
    predict(model, lr[:PREDICT_BATCH], guide[:PREDICT_BATCH])  # warm-up
    return n / min(_timed(lambda: predict(model, lr, guide, batch_size=PREDICT_BATCH)) for _ in range(3))


def policy_benchmark(dtype_policy: str, train_steps: int, predict_maps: int, jit_compile: bool, peak: float) -> dict:
    """Training and inference throughput of the default network under ``dtype_policy``."""
    model = build_model(dtype_policy=dtype_policy)
    flops, fused_flops = forward_flops(model), forward_flops(inference_network(model, (32, 32)))
    train_rate = training_maps_per_s(model, train_steps, jit_compile)
    infer_rate = inference_maps_per_s(model, predict_maps)
    return {
        "training_maps_per_s": train_rate,
        "inference_maps_per_s": infer_rate,
        "training_fraction_of_matmul": 3 * flops * train_rate / peak,
        "inference_fraction_of_matmul": fused_flops * infer_rate / peak,
    }


def run_benchmark(train_steps: int = 20, predict_maps: int = 512, jit_compile: bool = False) -> dict:
    """Measure everything listed in the module docstring; return it as a dict.

    The ``float32`` numbers are at the top level (as in earlier versions of this file); each policy's are
    under ``policies``; ``bfloat16_training_speedup`` and ``bfloat16_inference_speedup`` are their ratios.
    """
    model = build_model()
    flops = forward_flops(model)
    peak = matmul_flops_per_s()
    inference_flops = forward_flops(inference_network(model, (32, 32)))
    policies = {p: policy_benchmark(p, train_steps, predict_maps, jit_compile, peak) for p in DTYPE_POLICIES}
    full, mixed = policies["float32"], policies["mixed_bfloat16"]
    return {
        "model": model.name,
        "trainable_parameters": count_parameters(model),
        "forward_gflop_per_map": flops / 1e9,
        "inference_gflop_per_map": inference_flops / 1e9,
        **full,
        "numpy_matmul_gflop_per_s": peak / 1e9,
        "policies": policies,
        "bfloat16_training_speedup": mixed["training_maps_per_s"] / full["training_maps_per_s"],
        "bfloat16_inference_speedup": mixed["inference_maps_per_s"] / full["inference_maps_per_s"],
        "train_batch": TRAIN_BATCH,
        "predict_batch": PREDICT_BATCH,
        "jit_compile": jit_compile,
        "keras_backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="benchmarks/results/model_benchmark.json")
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--predict-maps", type=int, default=512)
    parser.add_argument("--jit-compile", action="store_true", help="compile the training step with XLA")
    args = parser.parse_args()
    results = run_benchmark(args.train_steps, args.predict_maps, args.jit_compile)
    save_json(Path(args.output), results)
    for key, value in results.items():
        if isinstance(value, dict):
            continue
        print(f"{key:32s} {value:.4g}" if isinstance(value, float) else f"{key:32s} {value}")


if __name__ == "__main__":
    main()
