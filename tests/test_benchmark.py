"""The recipe benchmark (benchmarks/benchmark_model.py) in a tiny configuration: its JSON schema and figure."""

from __future__ import annotations

import itertools
import json
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import smooth_maps

from mrsisr.study.runner import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import benchmark_model  # noqa: E402  (a script folder, not a package)

pytestmark = pytest.mark.slow  # started first on the xdist workers (conftest.py)

RECIPE_KEYS = {"training_maps_per_s", "inference_maps_per_s", "seconds_to_reference_psnr", "final_test_psnr", "curve"}
TOP_KEYS = {"training_speedup", "inference_speedup", "time_to_quality_ratio", "training_fraction_of_matmul"}


def test_a_tiny_benchmark_writes_every_recipe_and_the_ratios(tmp_path):
    data = tmp_path / "synthesis"
    data.mkdir()
    for split, (n, seed) in {"train": (48, 1), "val": (4, 2), "test": (4, 3)}.items():
        for name, array in zip(("lr", "guide", "hr"), smooth_maps(n, seed), strict=True):
            np.save(data / f"{split}_{name}.npy", array)
        pd.DataFrame({"subject": [f"s{i}" for i in range(n)]}).to_csv(data / f"{split}_meta.csv", index=False)
    output = tmp_path / "bench.json"
    args = ["--data", str(data), "--profile", "ci", "--minutes", "0.02", "--set", "batch_size=4", "--output"]
    benchmark_model.main([*args, str(output)])
    results = json.loads(output.read_text())
    assert TOP_KEYS <= set(results) and set(results["recipes"]) == {"baseline", benchmark_model.NEW_RECIPE}
    assert {"cpu", "cores", "load_average_before", "load_average_after"} <= set(results["machine"])
    assert results["profile"] == "ci" and results["maps"] == {"train": 48, "val": 4, "test": 4}
    for name, recipe in results["recipes"].items():
        assert RECIPE_KEYS <= set(recipe), name
        curve = recipe["curve"]
        assert curve[0]["seconds"] == 0 and len(curve) >= 2
        assert recipe["final_test_psnr"] == curve[-1]["test_psnr"] and recipe["training_maps_per_s"] > 0
        assert all(b["seconds"] >= a["seconds"] and b["maps"] > a["maps"] for a, b in itertools.pairwise(curve[1:]))
    baseline = results["recipes"]["baseline"]
    assert baseline["seconds_to_reference_psnr"] <= baseline["curve"][-1]["seconds"]
    new = results["recipes"][benchmark_model.NEW_RECIPE]
    expected = new["training_maps_per_s"] / baseline["training_maps_per_s"]
    assert results["training_speedup"] == expected and new["changes"]["erb_form"] == "compact"
    # the baseline is issue 15's recipe whatever the profile or --set say; each recipe's own changes win over both
    base_params, new_params = baseline["training_parameters"], new["training_parameters"]
    issue_day = {"erb_form": "expanded", "batch_size": 24, "learning_rate": 2.0e-3}
    assert {name: base_params[name] for name in issue_day} == issue_day
    assert new_params["batch_size"] == benchmark_model.RECIPES[benchmark_model.NEW_RECIPE]["batch_size"] == 8
    # each recipe upscales its own way: the baseline as on issue 15's day, the new one with today's predict
    assert baseline["inference"].startswith("keras.Model.predict") and new["inference"].startswith("mrsisr.network")
    assert results["inference_speedup"] == new["inference_maps_per_s"] / baseline["inference_maps_per_s"]
    assert output.with_suffix(".png").stat().st_size > 10_000


def test_the_upscale_benchmark_times_a_volume_and_each_batch_size(tmp_path):
    import benchmark_upscale  # noqa: PLC0415  (a script of the same folder)

    output = tmp_path / "upscale.json"
    results = benchmark_upscale.main(
        ["--output", str(output), "--repeats", "2", "--batch-sizes", "1,4", "--slices", "2", "--maps", "8"]
    )
    assert json.loads(output.read_text()) == json.loads(json.dumps(results))
    assert results["volume_shape"] == [64, 64, 2] and 0 < results["upscale_seconds"]
    rates = results["predict_maps_per_s"]
    assert set(rates) == {"1", "4"} and all(rate > 0 for rate in rates.values())
    assert results["best_predict_batch_size"] in (1, 4)


def test_the_convolution_ceiling_times_one_trunk_convolution_against_the_matmul():
    import profile_step  # noqa: PLC0415  (a script of the same folder)

    ceiling = profile_step.convolution_ceiling(batch_size=2, width=4, repeats=1)
    assert (ceiling["batch_size"], ceiling["width"]) == (2, 4)
    assert ceiling["conv_gflop_per_s"] > 0 and ceiling["matmul_gflop_per_s"] > 0
    ratio = ceiling["conv_gflop_per_s"] / ceiling["matmul_gflop_per_s"]
    assert ceiling["conv_fraction_of_matmul"] == pytest.approx(ratio)
