"""Stage ``beyond`` (mrsisr.stages.beyond): tiny networks trained in one harness, cached per network, stress tests."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from mrsisr.maps.lowres import make_lowres
from mrsisr.maps.synthesis import KINDS
from mrsisr.network.model import build_model
from mrsisr.scoring.ablation import ablation_display, ablation_table, claim_sentences, runs_display
from mrsisr.scoring.beyond_figures import plot_ablation, plot_stress
from mrsisr.scoring.stress import stress_display
from mrsisr.stages import beyond
from mrsisr.study import cache
from mrsisr.study.atomic import save_npy, save_text
from mrsisr.study.profiles import load_profile, stage_parameters

SPLIT_SUBJECTS = {"train": 3, "val": 1, "test": 3}


def _params(**overrides):
    values = {"beyond_variants": ["main", "no_guide"], "beyond_seeds": 2, **overrides}
    return stage_parameters("beyond", load_profile("ci", values))


def _publish(run_dir: Path) -> None:
    """Published synthesis (smooth maps, their k-space inputs and guides per split) and training outputs."""
    synthesis = cache.stage_output(run_dir, "synthesis", stage_parameters("synthesis", load_profile("ci")).model_dump())
    rng = np.random.default_rng(0)
    for split, n_subjects in SPLIT_SUBJECTS.items():
        n = len(KINDS) * n_subjects
        hr = ndimage.gaussian_filter(rng.random((n, 128, 128)), (0, 6, 6))
        hr -= hr.min(axis=(1, 2), keepdims=True)
        hr = (hr / hr.max(axis=(1, 2), keepdims=True)).astype(np.float32)
        save_npy(synthesis.path / f"{split}_hr.npy", hr)
        save_npy(synthesis.path / f"{split}_lr.npy", make_lowres(hr, 32, "kspace"))
        save_npy(synthesis.path / f"{split}_guide.npy", np.clip(1.0 - hr, 0.0, 1.0))
        subjects = [f"{split}{i // len(KINDS)}" for i in range(n)]
        grades = ["HGG" if i // len(KINDS) % 2 else "LGG" for i in range(n)]
        meta = pd.DataFrame({"subject": subjects, "grade": grades, "slice": 20, "kind": KINDS * n_subjects})
        save_text(synthesis.path / f"{split}_meta.csv", meta.assign(scale=1.0).to_csv(index=False))
    synthesis.mark_complete()
    cache.publish(run_dir, synthesis)
    recipe = stage_parameters("training", load_profile("ci")).model_dump() | {"cache_version": 6}
    training = cache.stage_output(run_dir, "training", recipe, {"synthesis": synthesis})
    build_model(width=8, mid_width=4, n_pairs=1).save(training.path / "model.keras")
    training.mark_complete()
    cache.publish(run_dir, training)


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> tuple[Path, beyond.BeyondResult]:
    run_dir = tmp_path_factory.mktemp("runs") / "ci"
    _publish(run_dir)
    return run_dir, beyond.run(run_dir, _params(), progress=False)


def test_every_planned_network_is_trained_and_scored(ran):
    run_dir, result = ran
    assert list(zip(result.runs["variant"], result.runs["seed"], strict=True)) == [
        ("main", 0),
        ("no_guide", 0),
        ("main", 1),
    ]
    assert (result.runs["epochs_run"] == 1).all() and (result.runs["n_params"] > 0).all()
    n_test = len(KINDS) * SPLIT_SUBJECTS["test"]
    assert result.run_metrics.groupby(["variant", "seed"]).size().tolist() == [n_test] * 3
    means = result.run_metrics.groupby(["variant", "seed"], sort=False)["psnr"].mean().to_numpy()
    np.testing.assert_allclose(means, result.runs["psnr"], rtol=1e-9)
    for name in beyond.EXPORTS:
        assert (run_dir / "beyond" / name).read_bytes() == (result.output.path / name).read_bytes()


def test_ablation_table_compares_with_main_at_the_subject_level(ran):
    _, result = ran
    table = result.ablation.set_index("variant")
    assert table.loc["main", "psnr_difference"] == 0.0
    no_guide = result.run_metrics[result.run_metrics["variant"] == "no_guide"]["psnr"].mean()
    main = result.run_metrics[(result.run_metrics["variant"] == "main") & (result.run_metrics["seed"] == 0)]
    assert table.loc["no_guide", "psnr_difference"] == pytest.approx(no_guide - main["psnr"].mean())
    assert table.loc["no_guide", "n_subjects"] == SPLIT_SUBJECTS["test"]
    assert 0 < table.loc["no_guide", "p_subjects"] <= 1
    seeds = result.runs[result.runs["variant"] == "main"]["psnr"]
    assert table["psnr_seed_sd"].iloc[0] == pytest.approx(seeds.std())
    shown = ablation_display(result.ablation)
    assert list(shown.index) == ["main", "no_guide"] and "seeds" in shown.attrs["caption"]
    runs = runs_display(result.runs)
    assert runs.index.names == ["Network", "Seed"] and len(runs) == 3 and "_" not in "".join(runs.columns)
    (sentence,) = claim_sentences(result.ablation)
    assert sentence.startswith("'the FLAIR guide helps'") and f"over {SPLIT_SUBJECTS['test']} subjects" in sentence
    glue = result.glue_values
    assert glue["n_runs"] == 3 and glue["psnr_gain_no_guide"] == table.loc["no_guide", "psnr_difference"]
    plt.close(plot_ablation(result.ablation, "ci"))


def test_stress_tests_cover_every_factor_and_start_from_the_unchanged_split(ran):
    _, result = ran
    summary = result.stress_summary
    factors = list(dict.fromkeys(summary["factor"]))
    assert len(factors) == 6 and factors[-1] == "tumour grade"
    first = summary.groupby("factor", sort=False).head(2)  # every factor's first level: model and spline
    unchanged = first[~first["factor"].isin(["tumour grade"])]
    for method in ("model", "spline"):
        values = unchanged[unchanged["method"] == method]["psnr_mean"]
        np.testing.assert_allclose(values, values.iloc[0], rtol=1e-6)
    noise = summary[summary["factor"].str.startswith("input noise") & (summary["method"] == "spline")]
    assert noise["psnr_mean"].is_monotonic_decreasing
    eight = summary[(summary["factor"] == "upscaling factor") & (summary["value"] == 8.0)]
    assert set(eight["method"]) == {"model", "spline"} and np.isfinite(eight["psnr_mean"]).all()
    shown = stress_display(summary)
    assert shown.index.names == ["Factor", "Level", "Method"] and "_" not in "".join(shown.columns)
    assert set(shown.index.get_level_values("Method")) == {"network", "cubic spline"}
    fig = plot_stress(summary, "ci")
    assert len([ax for ax in fig.axes if ax.lines]) == 6
    plt.close(fig)


def test_a_rerun_reuses_every_network_and_a_new_variant_trains_only_itself(ran):
    run_dir, result = ran
    folders = sorted((run_dir / "beyond" / "variants").iterdir())
    stamps = {folder: (folder / "model.keras").stat().st_mtime_ns for folder in folders}
    again = beyond.run(run_dir, _params(), progress=False)
    assert again.output.path == result.output.path
    more = beyond.run(run_dir, _params(beyond_variants=["main", "no_guide", "no_gdfn"]), progress=False)
    assert more.output.path != result.output.path
    assert {folder: (folder / "model.keras").stat().st_mtime_ns for folder in folders} == stamps
    assert len(list((run_dir / "beyond" / "variants").iterdir())) == len(folders) + 1
    pd.testing.assert_frame_equal(more.runs[more.runs["variant"] != "no_gdfn"].reset_index(drop=True), result.runs)


def test_unknown_variants_are_named_with_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="beyond_variants.*nope"):
        beyond.run(tmp_path, _params(beyond_variants=["main", "nope"]))


def test_no_variant_gives_empty_tables_and_a_figure_that_says_so(tmp_path):
    table = ablation_table(pd.DataFrame(columns=beyond.RUN_COLUMNS), pd.DataFrame(columns=["variant", "seed"]))
    assert table.empty and claim_sentences(table) == []
    plt.close(plot_ablation(table, "ci"))


def test_the_training_subset_is_seeded_shared_and_sized():
    rows = beyond.training_subset(100, 0.25, seed=0)
    assert len(rows) == 25 and np.all(np.diff(rows) > 0) and rows.max() < 100
    np.testing.assert_array_equal(rows, beyond.training_subset(100, 0.25, seed=0))
    assert not np.array_equal(rows, beyond.training_subset(100, 0.25, seed=1))
    np.testing.assert_array_equal(beyond.training_subset(7, 1.0, seed=3), np.arange(7))
    assert len(beyond.training_subset(3, 0.01, seed=0)) == 1
