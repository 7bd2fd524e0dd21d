"""The committed training-speed benchmark (``benchmarks/benchmark_model.py``), as notebook 03 shows it.

The benchmark is a separate run from the book's: it trains issue 15's recipe (``baseline``) and the demo
profile's recipe one after the other for the same time on a profile's synthesised maps and records test PSNR
against training seconds. Its results are committed in ``benchmarks/results/model_benchmark.json`` (a run of
the script overwrites them); this module reads them and says which run, profile and data they come from.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

BENCHMARK_RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "model_benchmark.json"


def load_benchmark(path: Path = BENCHMARK_RESULTS) -> dict | None:
    """The benchmark results at ``path``; None where there are none (an installed package has no benchmarks/).

    Raises
    ------
    ValueError
        If the file is not the JSON the benchmark writes (its path is named).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error})") from error
    missing = {"recipes", "profile", "maps", "date", "new_recipe"} - set(results)
    if missing:
        raise ValueError(f"{path}: not a result of benchmarks/benchmark_model.py (no {', '.join(sorted(missing))})")
    return results


def benchmark_data(results: dict) -> str:
    """In words, the maps the benchmark trained and tested on."""
    maps = results["maps"]
    return (
        f"the {results['profile']} profile's synthesised maps ({maps['train']:,} training, {maps['val']:,} "
        f"validation, {maps['test']:,} test maps)"
    )


def benchmark_table(results: dict) -> pd.DataFrame:
    """One row per recipe: its throughputs, its final test PSNR and its time to the reference."""
    rows = []
    for name, recipe in results["recipes"].items():
        rows.append(
            {
                "recipe": name,
                "training maps/s": recipe["training_maps_per_s"],
                "inference maps/s": recipe["inference_maps_per_s"],
                "final test PSNR (dB)": recipe["final_test_psnr"],
                "s to baseline's final PSNR": recipe["seconds_to_reference_psnr"],
            }
        )
    return pd.DataFrame(rows).set_index("recipe")


def benchmark_glue_values(results: dict) -> dict[str, object]:
    """The values a page glues about the benchmark (each under ``benchmark_<name>``)."""
    values = {
        "date": results["date"][:10],
        "profile": results["profile"],
        "data": benchmark_data(results),
        "new_recipe": results["new_recipe"],
        "minutes_per_recipe": results["minutes_per_recipe"],
        "machine": f"{results['machine']['cpu']}, {results['machine']['cores']} cores",
    }
    for ratio in ("training_speedup", "inference_speedup", "time_to_quality_ratio", "training_fraction_of_matmul"):
        values[ratio] = results[ratio]
    return {f"benchmark_{name}": value for name, value in values.items()}


def benchmark_summary(results: dict) -> str:
    """Three sentences: which run, machine and data; what each recipe changes; the new recipe's ratios."""
    machine = results["machine"]
    ratio = results["time_to_quality_ratio"]
    reached = (
        "never reached the baseline's final test PSNR"
        if ratio is None
        else f"reached the baseline's final test PSNR in {ratio:.2f}x its time"
    )
    changes = "; ".join(
        f"{name}: " + ", ".join(f"{key}={value}" for key, value in recipe["changes"].items())
        for name, recipe in results["recipes"].items()
    )
    return (
        f"Benchmark of {results['date'][:10]} on {machine['cpu']} ({machine['cores']} cores), "
        f"{benchmark_data(results)}, {results['minutes_per_recipe']:g} min of training per recipe.\n"
        f"The recipes change the profile's training parameters: {changes}.\n"
        f"{results['new_recipe']} over baseline: training {results['training_speedup']:.2f}x the maps per second, "
        f"inference {results['inference_speedup']:.2f}x; it {reached}; training at "
        f"{results['training_fraction_of_matmul']:.0%} of numpy's float32 matmul rate."
    )
