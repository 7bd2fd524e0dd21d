"""Benchmark training recipes of the network on a profile's data: throughput and test PSNR against training time.

Each recipe is the profile's training parameters with a few changed (:data:`RECIPES`): ``baseline`` is the
recipe of the day issue 15 was filed (FMEN's expanded ERBs, 24 maps per batch at rate 2e-3, the profile's
schedule), the others change the baseline and name what they change; a run measures the baseline and one other
(``--recipe``, default ``small_batch``, the demo profile's recipe). Both train, one after the other in the same run,
with :func:`mrsisr.network.train.train` on the synthesis output's train and validation maps for their epochs
or ``--minutes`` of training time; every ``--minutes`` / 12 of training time the test maps are upscaled (the
fused inference form) and their mean PSNR (data range 1, predictions clipped to [0, 1], as the study's ``psnr``)
recorded. The clock stops while the test set is scored, so the curve's time axis is the recipe's own training
time, validation and input pipeline included; process CPU seconds are recorded beside wall-clock seconds, since
the machine may be shared. Recorded per recipe:

- ``training_maps_per_s``: maps (map-equivalents of patches: a 16 x 16 patch of a 32 x 32 map is 1/4) trained per
  second of training time;
- ``inference_maps_per_s`` and ``inference``: the recipe's way of upscaling the test maps (tiled to at least 256
  maps), best of five timings taken after both trainings, alternating between the recipes so that both see the
  same machine. The baseline predicts as the study did on issue 15's day (``keras.Model.predict`` of the
  inference network, 32 maps per batch); the others with today's :func:`mrsisr.network.model.predict`
  (``predict_on_batch``, :data:`mrsisr.network.model.PREDICT_BATCH` maps per batch). Both use today's
  inference network, so the folds it gained since (HFAB BatchNorm, GDFN LayerNorm) count for neither;
- ``final_test_psnr`` at the end of the budget, ``seconds_to_reference_psnr``: the training time at which the
  test PSNR first reached the baseline's final one (None if never), and the ``curve``.

Top level: ``training_speedup``, ``inference_speedup`` and ``time_to_quality_ratio`` (the new recipe over the
baseline, same run), ``training_fraction_of_matmul`` (the new recipe's training FLOP/s, 3 x the forward pass's
convolution FLOPs per map, over numpy's float32 matmul rate measured in the same run), the machine, load
averages before and after, the date and the profile. A figure of test PSNR against training seconds, both
recipes, is written beside the JSON (same name, ``.png``). ``--step-profile`` adds the per-block timing of one
training step (``benchmarks/profile_step.py``).

A recipe that finishes its epochs before ``--minutes`` stops there; the default, 20 minutes, lets both demo
recipes run their whole schedule on a 2-core CPU, so the baseline's final PSNR is that of its finished
training (issue 15's definition). Shorter budgets cut the baseline's schedule, and where it is cut moves its
final PSNR a lot.

Usage: ``python benchmarks/benchmark_model.py [--minutes 20] [--run-dir runs/demo | --data SYNTHESIS_DIR]``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import keras
import matplotlib
import numpy as np

from mrsisr.network.figures import plot_benchmark_curves
from mrsisr.network.model import (
    PREDICT_BATCH,
    build_model,
    count_parameters,
    inference_network,
    model_inputs,
    predict,
)
from mrsisr.network.train import EpochBatches, train
from mrsisr.scoring.metrics import error_maps
from mrsisr.stages.synthesis import load_split
from mrsisr.stages.training import architecture, train_config
from mrsisr.study import cache
from mrsisr.study.atomic import atomic_path, save_json
from mrsisr.study.profiles import load_profile, parse_overrides, stage_parameters

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

sys.path.insert(0, str(Path(__file__).parent))
from profile_step import matmul_flops_per_s, profile_training_step, timed_seconds  # noqa: E402  (this folder's sibling script)

RECIPES = {
    # the recipe of issue 15's day, whatever the profile now says: FMEN's over-parameterised ERBs, 24 maps per
    # batch at rate 2e-3 (until 2026-11-27 22:00 only the ERBs were fixed here: the demo's batch of 8 leaked in)
    "baseline": {"erb_form": "expanded", "batch_size": 24, "learning_rate": 2.0e-3},
    "compact": {"erb_form": "compact"},  # ERBs trained as the residual 3x3 convolution they fuse to
    "small_batch": {"erb_form": "compact", "batch_size": 8, "learning_rate": 1.0e-3},  # and 3x the steps per map
    "expanded_small_batch": {"batch_size": 8, "learning_rate": 1.0e-3},  # small_batch's steps, expanded ERBs
    "patch16": {"patch_size": 16, "patch_margin": 1},  # 16 x 16 low-resolution windows (measured: no gain)
}
NEW_RECIPE = "small_batch"  # the recipe measured against the baseline unless --recipe names another
EVALUATIONS = 12  # test-set scorings per recipe, evenly over its training time
ISSUE_DAY_PREDICT_BATCH = 32  # maps per batch of the baseline's inference (keras.Model.predict)
INFERENCE_ROUNDS = 5


def forward_flops(model: keras.Model) -> int:
    """Floating-point operations of one forward pass for one map (convolutions only, 2 per multiply-add).

    Every convolution of the network runs on the low-resolution grid of the ``lr`` input, and a kernel of shape
    ``(k, k, C_in, C_out)`` (or ``(k, k, C, 1)`` depth-wise) costs ``2 * H * W * prod(kernel.shape)``.
    """
    _, height, width, _ = model.inputs[0].shape
    kernels = [w for w in model.trainable_weights if w.name == "kernel"]
    return int(sum(2 * height * width * int(np.prod(k.shape)) for k in kernels))


def mean_test_psnr(model: keras.Model, test: tuple[np.ndarray, np.ndarray | None, np.ndarray]) -> float:
    """Mean over the test maps of the PSNR (data range 1) of the model's clipped upscaled maps."""
    lr, guide, hr = test
    mse = np.mean(np.square(error_maps(predict(model, lr, guide), hr)), axis=(1, 2))
    return float(np.mean(-10 * np.log10(mse)))


class BudgetSpent(Exception):
    """Raised by :class:`TrainingClock` when the recipe's training time is spent."""


class TrainingClock(keras.callbacks.Callback):
    """Count training time (wall and CPU) without the test scorings; score the test set on a schedule; stop at budget.

    Parameters
    ----------
    test : tuple
        ``(lr, guide, hr)`` test maps.
    budget_s : float
        Training seconds after which :class:`BudgetSpent` is raised (after a last scoring).
    interval_s : float
        Training seconds between test scorings.
    samples_per_epoch : int
        Training samples in one epoch (maps, or patches).
    batch_size : int
        Samples per step.
    map_fraction : float
        Map-equivalents of one sample (1 for full maps).
    """

    def __init__(
        self, test, budget_s: float, interval_s: float, samples_per_epoch: int, batch_size: int, map_fraction: float
    ):
        super().__init__()
        self.test, self.budget_s, self.interval_s = test, budget_s, interval_s
        self.samples_per_epoch, self.batch_size, self.map_fraction = samples_per_epoch, batch_size, map_fraction
        self.curve: list[dict] = []
        self.started = None
        self.samples = 0
        self.paused_s = self.paused_cpu_s = 0.0

    def elapsed(self) -> tuple[float, float]:
        """Training (wall, CPU) seconds so far, scorings left out."""
        return (
            time.perf_counter() - self.started - self.paused_s,
            time.process_time() - self.cpu_started - self.paused_cpu_s,
        )

    def score(self) -> None:
        """Append the test PSNR at the current training time to :attr:`curve`; its own time is left out."""
        wall, cpu = self.elapsed() if self.started is not None else (0.0, 0.0)
        start, cpu_start = time.perf_counter(), time.process_time()
        psnr = mean_test_psnr(self.model, self.test)
        self.curve.append(
            {"seconds": wall, "cpu_seconds": cpu, "maps": self.samples * self.map_fraction, "test_psnr": psnr}
        )
        self.paused_s += time.perf_counter() - start
        self.paused_cpu_s += time.process_time() - cpu_start

    def on_train_begin(self, logs=None):
        if self.started is None:
            self.score()  # the untrained network: the k-space interpolation
            self.started, self.cpu_started = time.perf_counter(), time.process_time()

    def on_epoch_begin(self, epoch, logs=None):
        self.step = 0

    def on_train_batch_end(self, batch, logs=None):
        self.samples += min(self.batch_size, self.samples_per_epoch - self.step * self.batch_size)
        self.step += 1
        wall, _ = self.elapsed()
        if wall >= self.budget_s or wall - self.curve[-1]["seconds"] >= self.interval_s:
            self.score()
        if wall >= self.budget_s:
            raise BudgetSpent


def load_data(folder: Path, max_maps: int, guided: bool) -> dict[str, tuple]:
    """The train, val and test splits of a synthesis output, each cut to its first ``max_maps`` maps (0: all)."""
    data = {}
    for split in ("train", "val", "test"):
        lr, guide, hr, _ = load_split(folder, split, mmap=False)
        cut = slice(None, max_maps or None)
        data[split] = (lr[cut], guide[cut] if guided else None, hr[cut])
    return data


def run_recipe(name: str, changes: dict, profile: str, data: dict, minutes: float, folder: Path) -> dict:
    """Train recipe ``name`` (the profile's training parameters with ``changes``) for ``minutes``; its numbers."""
    params = stage_parameters("training", load_profile(profile, changes | {"time_budget_min": 0.0}))
    config = train_config(params)
    batches = EpochBatches(*data["train"], config)
    samples = len(batches.lr) * batches.patches_per_map
    budget = 60.0 * minutes
    clock = TrainingClock(
        data["test"], budget, budget / EVALUATIONS, samples, config.batch_size, batches.map_equivalents / samples
    )
    try:
        train(
            lambda: build_model(**architecture(params)),
            data["train"],
            data["val"],
            config,
            folder / name,
            progress=False,
            callbacks=[clock],
        )
    except BudgetSpent:
        pass
    else:
        clock.score()  # every epoch done before the budget
    final = clock.curve[-1]
    return {
        "changes": changes,
        "training_parameters": params.model_dump(),
        "training_maps_per_s": final["maps"] / final["seconds"],
        "training_maps_per_cpu_s": final["maps"] / final["cpu_seconds"],
        "final_test_psnr": final["test_psnr"],
        "training_seconds": final["seconds"],
        "forward_gflop_per_map": forward_flops(clock.model) / 1e9,  # the recipe's own training network
        "curve": clock.curve,
        "model": clock.model,
    }


def issue_day_predict(model: keras.Model, lr: np.ndarray, guide: np.ndarray | None) -> np.ndarray:
    """Upscale as the study did on issue 15's day: ``keras.Model.predict`` of the inference network."""
    network = inference_network(model, lr.shape[1:])
    return network.predict(model_inputs(lr, guide), batch_size=ISSUE_DAY_PREDICT_BATCH, verbose=0)[..., 0]


def inference_way(recipe: str) -> tuple[str, Callable]:
    """How recipe ``recipe`` upscales: a description and the function ``(model, lr, guide) -> sr``."""
    if recipe == "baseline":
        return f"keras.Model.predict, {ISSUE_DAY_PREDICT_BATCH} maps per batch (issue 15's day)", issue_day_predict
    return f"mrsisr.network.model.predict, predict_on_batch, {PREDICT_BATCH} maps per batch", predict


def inference_rates(models: dict[str, keras.Model], test: tuple) -> dict[str, float]:
    """Maps per second of each recipe's way of upscaling, on its model: best of alternating timings."""
    lr, guide, _ = test
    repeats = -(-256 // len(lr))  # at least 256 maps per timing
    lr, guide = np.concatenate([lr] * repeats), None if guide is None else np.concatenate([guide] * repeats)
    ways = {name: inference_way(name)[1] for name in models}
    for name, model in models.items():
        ways[name](model, lr, guide)  # warm-up: traces every batch shape
    best = dict.fromkeys(models, 0.0)
    for _ in range(INFERENCE_ROUNDS):
        for name, model in models.items():
            seconds = timed_seconds(lambda way=ways[name], model=model: way(model, lr, guide))
            best[name] = max(best[name], len(lr) / seconds)
    return best


def seconds_to(curve: list[dict], psnr: float, key: str = "seconds") -> float | None:
    """The first training time (``key``) of ``curve`` at which the test PSNR reached ``psnr``; None if never."""
    return next((point[key] for point in curve if point["test_psnr"] >= psnr), None)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what :mod:`platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def run_benchmark(
    data_dir: Path,
    minutes: float,
    profile: str = "demo",
    changes: dict | None = None,
    max_maps: int = 0,
    step_profile: bool = False,
    new_recipe: str = NEW_RECIPE,
) -> dict:
    """Run the baseline and ``new_recipe`` of :data:`RECIPES` on the synthesis output ``data_dir``; the results."""
    load_before = os.getloadavg()
    changes = changes or {}
    guided = stage_parameters("training", load_profile(profile, changes)).guided
    data = load_data(data_dir, max_maps, guided)
    timing = profile_training_step() if step_profile else None  # first: a failure here costs no recipe run
    peak = matmul_flops_per_s()
    recipes = {}
    with tempfile.TemporaryDirectory(prefix="mrsisr-benchmark-") as folder:
        for name in ("baseline", new_recipe):
            recipe_changes = changes | RECIPES["baseline"] | RECIPES[name]  # each recipe changes the baseline
            recipes[name] = run_recipe(name, recipe_changes, profile, data, minutes, Path(folder))
    models = {name: recipe.pop("model") for name, recipe in recipes.items()}
    for name, rate in inference_rates(models, data["test"]).items():
        recipes[name]["inference"] = inference_way(name)[0]
        recipes[name]["inference_maps_per_s"] = rate
    model = models[new_recipe]
    reference = recipes["baseline"]["final_test_psnr"]
    for recipe in recipes.values():
        recipe["seconds_to_reference_psnr"] = seconds_to(recipe["curve"], reference)
        recipe["cpu_seconds_to_reference_psnr"] = seconds_to(recipe["curve"], reference, "cpu_seconds")
        flops = 1e9 * recipe["forward_gflop_per_map"]
        recipe["training_fraction_of_matmul"] = 3 * flops * recipe["training_maps_per_s"] / peak
    base, new = recipes["baseline"], recipes[new_recipe]
    reached = new["seconds_to_reference_psnr"], base["seconds_to_reference_psnr"]
    ratio = reached[0] / reached[1] if reached[0] is not None and reached[1] else None
    results = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "profile": profile,
        "profile_changes": changes,
        "data": str(data_dir),
        "maps": {split: len(arrays[0]) for split, arrays in data.items()},
        "minutes_per_recipe": minutes,
        "new_recipe": new_recipe,
        "reference_psnr": reference,
        "recipes": recipes,
        "training_speedup": new["training_maps_per_s"] / base["training_maps_per_s"],
        "inference_speedup": new["inference_maps_per_s"] / base["inference_maps_per_s"],
        "time_to_quality_ratio": ratio,
        "training_fraction_of_matmul": new["training_fraction_of_matmul"],
        "numpy_matmul_gflop_per_s": peak / 1e9,
        "forward_gflop_per_map": new["forward_gflop_per_map"],
        "inference_gflop_per_map": forward_flops(inference_network(model, data["test"][0].shape[1:])) / 1e9,
        "model": model.name,
        "trainable_parameters": count_parameters(model),
        "keras_backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "load_average_before": list(load_before)},
    }
    if timing is not None:
        results["step_profile"] = timing
    results["machine"]["load_average_after"] = list(os.getloadavg())
    return results


def save_curves(results: dict, path: Path) -> None:
    """Save the figure of test PSNR against training seconds (:func:`plot_benchmark_curves`) to ``path``."""
    figure = plot_benchmark_curves(results)
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="benchmarks/results/model_benchmark.json", type=Path)
    parser.add_argument("--minutes", type=float, default=20.0, help="training time per recipe, at most")
    parser.add_argument("--profile", default="demo")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change a profile parameter for every recipe (e.g. a tiny network for a test)",
    )
    parser.add_argument("--run-dir", default="runs/demo", type=Path, help="the run whose synthesis output to use")
    parser.add_argument("--data", type=Path, help="a synthesis output folder (instead of --run-dir's)")
    parser.add_argument("--max-maps", type=int, default=0, help="use the first N maps of each split (0: all)")
    parser.add_argument(
        "--recipe",
        default=NEW_RECIPE,
        choices=[name for name in RECIPES if name != "baseline"],
        help="the recipe measured against the baseline",
    )
    parser.add_argument("--step-profile", action="store_true", help="add the per-block timing of a training step")
    args = parser.parse_args(argv)
    data_dir = args.data or cache.current(args.run_dir, "synthesis").path
    results = run_benchmark(
        data_dir, args.minutes, args.profile, parse_overrides(args.set), args.max_maps, args.step_profile, args.recipe
    )
    save_json(args.output, results)
    save_curves(results, args.output.with_suffix(".png"))
    for key in ("training_speedup", "inference_speedup", "time_to_quality_ratio", "training_fraction_of_matmul"):
        print(f"{key:32s} {results[key]}")
    for name, recipe in results["recipes"].items():
        print(name, {k: recipe[k] for k in ("training_maps_per_s", "final_test_psnr", "seconds_to_reference_psnr")})
    return results


if __name__ == "__main__":
    main()
