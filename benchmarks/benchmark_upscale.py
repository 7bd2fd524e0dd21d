"""Benchmark inference: ``mrsisr upscale`` of a 64 x 64 x 39 volume, and prediction batch sizes.

Two measurements with the packaged (unguided) model, in one process:

- ``upscale_seconds``: :func:`mrsisr.upscale.upscale_file` on a synthetic 64 x 64 x 39 map (NIfTI, 3.44 mm
  in-plane voxels, NaN outside an elliptical brain, as a 7 T MRSI volume), writing 256 x 256 x 39; the first call
  (``upscale_seconds_first``: model loading and graph building included) and the best of the next ones;
- ``predict_maps_per_s``: :func:`mrsisr.network.model.predict` on 32 x 32 maps for each batch size of
  ``--batch-sizes`` (best of three), the study's test-map shape, in the same run.

The JSON records the machine, the load averages, the Keras backend and the date. Usage:
``python benchmarks/benchmark_upscale.py [--output benchmarks/results/upscale_benchmark.json]``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from pathlib import Path

import keras
import nibabel as nib
import numpy as np
from benchmark_model import cpu_model

from mrsisr.network.model import load_model, predict
from mrsisr.network.packaged import default_model_path
from mrsisr.study.atomic import save_json
from mrsisr.upscale import upscale_file

VOLUME_SHAPE = (64, 64, 39)
VOXEL_MM = (220 / 64, 220 / 64, 3.0)
PREDICT_MAPS = 256


def brain_volume(shape: tuple[int, int, int] = VOLUME_SHAPE, seed: int = 0) -> np.ndarray:
    """A smooth positive map (arbitrary units) with NaN outside an elliptical brain, one pattern per slice."""
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    inside = x**2 / 0.8 + y**2 / 0.7 < 1
    rng = np.random.default_rng(seed)
    slices = [
        np.where(
            inside, 3000.0 * (1.0 + 0.3 * np.cos(3 * x + 0.2 * k) * np.sin(2 * y) + 0.05 * rng.random(x.shape)), np.nan
        )
        for k in range(shape[2])
    ]
    return np.stack(slices, axis=2).astype(np.float32)


def time_upscale(folder: Path, repeats: int, shape: tuple[int, int, int] = VOLUME_SHAPE) -> list[float]:
    """Seconds of each of ``repeats`` ``upscale_file`` calls on one volume of ``shape`` (a new output each time)."""
    source = folder / "naa.nii.gz"
    nib.save(nib.Nifti1Image(brain_volume(shape), np.diag([*VOXEL_MM, 1.0])), source)
    seconds = []
    for k in range(repeats):
        start = time.perf_counter()
        upscale_file(source, folder / f"naa_x4_{k}.nii.gz", log=lambda _: None)
        seconds.append(time.perf_counter() - start)
    return seconds


def predict_rates(batch_sizes: list[int], n_maps: int = PREDICT_MAPS) -> dict[str, float]:
    """Maps per second of :func:`predict` on ``n_maps`` 32 x 32 maps, packaged model, per batch size (best of 3)."""
    model = load_model(default_model_path())
    lr = np.random.default_rng(1).random((n_maps, 32, 32), dtype=np.float32)
    predict(model, lr[:8])  # builds the inference network once
    rates = {}
    for batch in batch_sizes:
        predict(model, lr[:batch], batch_size=batch)
        best = min(_seconds(lambda b=batch: predict(model, lr, batch_size=b)) for _ in range(3))
        rates[str(batch)] = n_maps / best
    return rates


def _seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="benchmarks/results/upscale_benchmark.json", type=Path)
    parser.add_argument("--repeats", type=int, default=3, help="upscale calls (the first includes loading)")
    parser.add_argument("--batch-sizes", default="1,8,32,128", help="prediction batch sizes, comma-separated")
    parser.add_argument("--slices", type=int, default=VOLUME_SHAPE[2], help="slices of the 64 x 64 volume")
    parser.add_argument("--maps", type=int, default=PREDICT_MAPS, help="32 x 32 maps per prediction timing")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    shape = (*VOLUME_SHAPE[:2], args.slices)
    with tempfile.TemporaryDirectory(prefix="mrsisr-upscale-benchmark-") as folder:
        seconds = time_upscale(Path(folder), max(2, args.repeats), shape)
    rates = predict_rates([int(b) for b in args.batch_sizes.split(",")], args.maps)
    results = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "volume_shape": list(shape),
        "model": "packaged (unguided)",
        "upscale_seconds_first": seconds[0],
        "upscale_seconds": min(seconds[1:]),
        "upscale_slices_per_s": shape[2] / min(seconds[1:]),
        "predict_maps_per_s": rates,
        "best_predict_batch_size": int(max(rates, key=rates.get)),
        "keras_backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "load_average_before": list(load_before)},
    }
    results["machine"]["load_average_after"] = list(os.getloadavg())
    save_json(args.output, results)
    print(f"upscale {'x'.join(map(str, shape))}: {results['upscale_seconds']:.2f} s (first call {seconds[0]:.2f} s)")
    print("predict maps/s by batch size:", {k: round(v, 1) for k, v in rates.items()})
    return results


if __name__ == "__main__":
    main()
