"""Train the default model that ``mrsisr upscale`` ships with, using the study's own stages.

The script runs the segmentation (01), synthesis (02), training (03) and evaluation (04) stages of a
profile into their own run folder, copies the trained ``model.keras`` to
``mrsisr/weights/default_model.keras`` and writes ``default_model.json`` beside it: the command (without
the local ``--runs-root``), the profile and every parameter, the date, the git commit of the checkout
(``-dirty`` when it had changes), the versions of the libraries that shape the model, the Keras backend,
the cache keys of the synthesis (data set) and training stages, the sha256 of the model file (checked
whenever the packaged model loads, :func:`mrsisr.network.packaged.default_model_path`), what it was
trained on, the training summary and the test metrics (mean MSE, PSNR, SSIM, LPIPS of the model and of the
cubic spline on that run's test split).

The packaged model is **unguided** by default (``--set guided=false``): it upscales a map without a
co-registered FLAIR, so ``mrsisr upscale`` works on any metabolite map right after install. Example:

    python scripts/train_default_model.py --profile demo --set guided=false --set n_subjects=24 \\
        --set n_test_subjects=4 --set time_budget_min=10
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
from pathlib import Path

import keras
import pandas as pd

from mrsisr.mrsi.sidecar import git_commit
from mrsisr.network.packaged import DEFAULT_MODEL, DEFAULT_MODEL_CARD
from mrsisr.scoring.map_settings import method_scores
from mrsisr.stages import TRAINED_MODEL_STAGES, run_modules
from mrsisr.study.atomic import atomic_path, file_sha256, save_json
from mrsisr.study.profiles import load_profile, parse_overrides
from mrsisr.study.provenance import library_versions, recorded_command

REPORTED = ("mse", "psnr", "ssim", "lpips")


def summarise_test_metrics(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Mean test metrics of the model and the spline from an evaluation stage's ``table2.csv`` (one row per method)."""
    return method_scores(table, methods=("model", "spline"), metrics=REPORTED)


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate and package the default model; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--set", action="append", default=["guided=false"], metavar="KEY=VALUE")
    parser.add_argument(
        "--runs-root", default="runs/default_model", help="where the stages write (default: %(default)s)"
    )
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    overrides = parse_overrides(args.set)
    params = load_profile(args.profile, overrides)
    run_dir = Path(args.runs_root) / args.profile
    started = datetime.datetime.now(datetime.UTC)
    commit = git_commit() or "not recorded (not run from a git checkout)"  # before the model file is replaced
    results = run_modules(run_dir, params, TRAINED_MODEL_STAGES)
    trained = results["training"].output
    with atomic_path(DEFAULT_MODEL, suffix=".keras") as tmp:
        shutil.copyfile(trained.path / "model.keras", tmp)
    save_json(
        DEFAULT_MODEL_CARD,
        {
            "command": recorded_command("scripts/train_default_model.py", argv),
            "profile": args.profile,
            "overrides": overrides,
            "parameters": params,
            "date_utc": started.isoformat(timespec="seconds"),
            "training_minutes": round(results["training"].summary["seconds"] / 60, 1),
            "command_minutes": round((datetime.datetime.now(datetime.UTC) - started).total_seconds() / 60, 1),
            "command_minutes_note": "wall time of the command that wrote this card (stages reused from cache)",
            "git_commit": commit,
            "library_versions": library_versions(),
            "keras_backend": keras.backend.backend(),
            "dataset_stage_key": results["synthesis"].output.key,
            "model_stage_key": trained.key,
            "sha256": file_sha256(DEFAULT_MODEL),
            "trained_on": f"simulated phantom maps only ({params['anatomy_source']} anatomy, profile {args.profile})",
            "training": results["training"].summary,
            "test_metrics": summarise_test_metrics(results["evaluation"].summary),
        },
    )
    print(f"wrote {DEFAULT_MODEL} and {DEFAULT_MODEL_CARD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
