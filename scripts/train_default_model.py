"""Train the default model that ``mrsisr upscale`` ships with, using the study's own stages.

The script runs the anatomy (01), dataset (02), training (03) and evaluation (04) stage drivers of a
profile into their own run folder, copies the trained ``model.keras`` to
``mrsisr/weights/default_model.keras`` and writes ``default_model.json`` beside it: the command, the
profile and every parameter, the date, the sha256 of the model file, the training summary and the test
metrics (mean MSE, PSNR, SSIM, LPIPS of the model and of the cubic spline on that run's test split).

The packaged model is **unguided** by default (``--set guided=false``): it upscales a map without a
co-registered FLAIR, so ``mrsisr upscale`` works on any metabolite map right after install. Example:

    python scripts/train_default_model.py --profile demo --set guided=false --set n_subjects=24 \\
        --set n_test_subjects=4 --set time_budget_min=10
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import shlex
import shutil
import sys
from pathlib import Path

import pandas as pd

from mrsisr.network.packaged import DEFAULT_MODEL, DEFAULT_MODEL_CARD
from mrsisr.stages.evaluation import evaluate_test_split
from mrsisr.stages.segmentation import run_anatomy_stage
from mrsisr.stages.synthesis import run_dataset_stage
from mrsisr.stages.training import run_training_stage
from mrsisr.study.atomic import atomic_path, save_json
from mrsisr.study.profiles import load_profile, parse_overrides

REPORTED = ("mse", "psnr", "ssim", "lpips")


def summarise_test_metrics(results_dir: Path) -> dict[str, dict[str, float]]:
    """Mean test metrics of the model and the spline from a ``results`` stage's ``table2.csv``."""
    table = pd.read_csv(results_dir / "table2.csv").set_index("method")
    return {
        method: {metric: float(table.loc[method, f"{metric}_mean"]) for metric in REPORTED}
        | {"n": int(table.loc[method, "n"])}
        for method in ("model", "spline")
    }


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate and package the default model; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--set", action="append", default=["guided=false"], metavar="KEY=VALUE")
    parser.add_argument(
        "--runs-root", default="runs/default_model", help="where the stages write (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    overrides = parse_overrides(args.set)
    params = load_profile(args.profile, overrides)
    run_dir = Path(args.runs_root) / args.profile
    started = datetime.datetime.now(datetime.UTC)
    run_anatomy_stage(run_dir, params)
    run_dataset_stage(run_dir, params)
    trained = run_training_stage(run_dir, params)
    results = evaluate_test_split(run_dir, ["spline"])
    with atomic_path(DEFAULT_MODEL, suffix=".keras") as tmp:
        shutil.copyfile(trained.path / "model.keras", tmp)
    training = pd.read_json(trained.path / "training.json", typ="series").to_dict()
    save_json(
        DEFAULT_MODEL_CARD,
        {
            "command": shlex.join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
            "profile": args.profile,
            "overrides": overrides,
            "parameters": params,
            "date_utc": started.isoformat(timespec="seconds"),
            "minutes": round((datetime.datetime.now(datetime.UTC) - started).total_seconds() / 60, 1),
            "sha256": hashlib.sha256(DEFAULT_MODEL.read_bytes()).hexdigest(),
            "model_stage_key": trained.key,
            "training": training,
            "test_metrics": summarise_test_metrics(results.path),
        },
    )
    print(f"wrote {DEFAULT_MODEL} and {DEFAULT_MODEL_CARD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
