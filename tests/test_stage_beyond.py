"""Stage ``beyond`` (mrsisr.stages.beyond): tiny networks trained in one harness, cached per network, stress tests,
real-anatomy rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from conftest import shared_folder
from scipy import ndimage

from mrsisr.maps.lowres import make_lowres
from mrsisr.maps.synthesis import KINDS
from mrsisr.network.model import build_model, count_parameters
from mrsisr.scoring.ablation import REAL_NOT_RUN, ablation_display, ablation_table, claim_sentences, runs_display
from mrsisr.scoring.beyond_figures import plot_ablation, plot_stress
from mrsisr.scoring.stress import lesion_size_groups, stress_display
from mrsisr.stages import beyond
from mrsisr.study import cache
from mrsisr.study.atomic import save_npy, save_text
from mrsisr.study.profiles import load_profile, stage_parameters

pytestmark = pytest.mark.slow  # started first on the xdist workers (conftest.py)

SPLIT_SUBJECTS = {"train": 3, "val": 1, "test": 3}
LESION_MM2 = (0.0, 150.0, 600.0)  # per subject of a split: no lesion, a small and a large one


def _params(**overrides):
    values = {"beyond_variants": ["main", "no_guide"], "beyond_seeds": 2, **overrides}
    return stage_parameters("beyond", load_profile("ci", values))


def _publish(run_dir: Path, erb_form: str = "expanded") -> None:
    """Published segmentation (its record), synthesis (smooth maps, their k-space inputs and guides per split),
    training (a tiny network, the ci recipe with ``erb_form``) and evaluation (no real anatomy) outputs."""
    segmentation = cache.stage_output(
        run_dir, "segmentation", stage_parameters("segmentation", load_profile("ci")).model_dump()
    )
    segmentation.mark_complete()
    cache.publish(run_dir, segmentation)
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
        lesions = [LESION_MM2[i // len(KINDS) % len(LESION_MM2)] for i in range(n)]
        meta = pd.DataFrame({"subject": subjects, "grade": grades, "slice": 20, "kind": KINDS * n_subjects})
        save_text(synthesis.path / f"{split}_meta.csv", meta.assign(lesion_mm2=lesions, scale=1.0).to_csv(index=False))
    synthesis.mark_complete()
    cache.publish(run_dir, synthesis)
    recipe = stage_parameters("training", load_profile("ci", {"erb_form": erb_form})).model_dump()
    training = cache.stage_output(run_dir, "training", recipe | {"cache_version": 6}, {"synthesis": synthesis})
    build_model(width=8, mid_width=4, n_pairs=1).save(training.path / "model.keras")
    training.mark_complete()
    cache.publish(run_dir, training)
    _publish_evaluation(run_dir, real_eval_root="")


def _publish_evaluation(run_dir: Path, **record) -> None:
    """A published evaluation output whose record holds ``record`` (what the beyond stage reads of it)."""
    evaluation = cache.stage_output(run_dir, "evaluation", record)
    evaluation.mark_complete()
    cache.publish(run_dir, evaluation)


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
    assert glue["claims"] == sentence and "real_claims" not in glue  # the discussion chapter quotes it
    plt.close(plot_ablation(result.ablation, "ci"))
    # no real anatomy configured: no real rows, and the real table says so and how to run it
    assert not result.real_run and glue["real_run"] is False and "real_psnr_gain_no_guide" not in glue
    assert glue["real_data"].startswith("none")
    assert set(result.run_metrics["split"]) == {"test"} and "real_psnr" not in result.ablation
    real = ablation_display(result.ablation, split="real")
    assert real.empty and real.attrs["caption"] == REAL_NOT_RUN and "--set real_eval_root=" in REAL_NOT_RUN
    assert claim_sentences(result.ablation, split="real") == []


def test_stress_tests_cover_every_factor_and_start_from_the_unchanged_split(ran):
    _, result = ran
    summary = result.stress_summary
    factors = list(dict.fromkeys(summary["factor"]))
    assert len(factors) == 7 and factors[-2:] == ["tumour grade", "tumour size (lesion area)"]
    first = summary.groupby("factor", sort=False).head(2)  # every factor's first level: model and spline
    unchanged = first[~first["factor"].isin(factors[-2:])]
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
    size = summary[(summary["factor"] == factors[-1]) & (summary["method"] == "model")]
    assert list(size["level"]) == ["no lesion", "small (up to 375 mm²)", "large (over 375 mm²)"]
    maps = result.stress[(result.stress["factor"] == factors[-1]) & (result.stress["method"] == "model")]
    assert maps.groupby("level", sort=False).size().tolist() == [len(KINDS)] * 3  # one test subject each
    whole = summary[(summary["factor"] == factors[0]) & (summary["value"] == 0) & (summary["method"] == "model")]
    sizes = maps.groupby("level")["psnr"].agg(["mean", "size"])
    assert (sizes["mean"] * sizes["size"]).sum() / sizes["size"].sum() == pytest.approx(whole["psnr_mean"].iloc[0])
    fig = plot_stress(summary, "ci")
    assert len([ax for ax in fig.axes if ax.lines]) == 7
    plt.close(fig)


def test_lesion_size_groups_split_at_the_median_of_the_maps_with_a_lesion():
    groups = lesion_size_groups(np.array([0.0, 10.0, 20.0, 30.0, 0.0, 40.0]))
    assert [label for label, _ in groups] == ["no lesion", "small (up to 25 mm²)", "large (over 25 mm²)"]
    assert [rows.nonzero()[0].tolist() for _, rows in groups] == [[0, 4], [1, 2], [3, 5]]
    assert [label for label, _ in lesion_size_groups(np.array([5.0, 7.0, 9.0]))] == [
        "small (up to 7 mm²)",
        "large (over 7 mm²)",
    ]


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
    assert len(list((run_dir / "beyond" / "stress").iterdir())) == 1  # the stress tests ran once
    pd.testing.assert_frame_equal(more.stress, result.stress)
    pd.testing.assert_frame_equal(more.runs[more.runs["variant"] != "no_gdfn"].reset_index(drop=True), result.runs)


def test_unknown_variants_are_named_with_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="beyond_variants.*nope"):
        beyond.run(tmp_path, _params(beyond_variants=["main", "nope"]))


def test_no_variant_gives_empty_tables_and_a_figure_that_says_so(tmp_path):
    metrics = pd.DataFrame(columns=["variant", "seed", "split"])
    table = ablation_table(pd.DataFrame(columns=beyond.RUN_COLUMNS), metrics)
    assert table.empty and claim_sentences(table) == []
    plt.close(plot_ablation(table, "ci"))


def test_the_seeded_subset_is_shared_and_sized():
    rows = beyond.seeded_subset(100, 0.25, seed=0)
    assert len(rows) == 25 and np.all(np.diff(rows) > 0) and rows.max() < 100
    np.testing.assert_array_equal(rows, beyond.seeded_subset(100, 0.25, seed=0))
    assert not np.array_equal(rows, beyond.seeded_subset(100, 0.25, seed=1))
    np.testing.assert_array_equal(beyond.seeded_subset(7, 1.0, seed=3), np.arange(7))
    assert len(beyond.seeded_subset(3, 0.01, seed=0)) == 1


def test_stale_incomplete_variant_folders_are_removed_and_planned_ones_kept(ran, capsys):
    run_dir, result = ran
    variants = run_dir / "beyond" / "variants"
    stale = variants / "0123456789abcdef"
    (stale / "checkpoints").mkdir(parents=True)
    (stale / "checkpoints" / "history.csv").write_text("epoch\n")
    complete = {folder for folder in variants.iterdir() if (folder / cache.COMPLETE_MARKER).is_file()}
    planned = beyond.variant_output(
        run_dir, "main", 0, _params(), cache.current(run_dir, "training"), cache.current(run_dir, "synthesis")
    )
    marker = planned.path / cache.COMPLETE_MARKER
    marker.rename(planned.path / "set-aside")  # the planned network looks as a killed run left it
    try:
        again = beyond.run(run_dir, _params(), progress=False)
    finally:
        (planned.path / "set-aside").rename(marker)
    assert again.output.path == result.output.path  # the stage's own output was complete: nothing retrained
    assert not stale.exists() and f"removing {stale}" in capsys.readouterr().out
    assert set(variants.iterdir()) == complete and planned.path in complete


def test_the_study_network_is_trained_in_the_recorded_erb_form(ran, tmp_path):
    run_dir, _ = ran
    expanded = {"training": cache.current(run_dir, "training"), "synthesis": cache.current(run_dir, "synthesis")}
    _publish(tmp_path, erb_form="compact")
    compact = {"training": cache.current(tmp_path, "training"), "synthesis": cache.current(tmp_path, "synthesis")}
    params = _params()
    folders = [beyond.variant_output(tmp_path, "main", 0, params, **ups).path.name for ups in (expanded, compact)]
    assert folders[0] != folders[1]  # the recorded recipe keys the network: no stale reuse across ERB forms
    recipes = {
        form: beyond.training_recipe(ups["training"]) for form, ups in (("expanded", expanded), ("compact", compact))
    }
    for variant in ("main", "no_guide"):
        built = {form: beyond.network_builder(variant, True, recipe)() for form, recipe in recipes.items()}
        assert built["compact"].name == built["expanded"].name + "_compact"
        assert count_parameters(built["compact"]) < count_parameters(built["expanded"])
    authors = [beyond.network_builder("authors", True, recipe)() for recipe in recipes.values()]
    assert authors[0].name == authors[1].name  # the peers take no erb_form
    no_form = {name: value for name, value in compact["training"].params.items() if name != "erb_form"}
    old = cache.stage_output(tmp_path, "training", no_form)  # a record from before erb_form: the default
    assert beyond.training_recipe(old).erb_form == "expanded"


@pytest.fixture(scope="module")
def ran_real(ran, tmp_path_factory) -> tuple[Path, beyond.BeyondResult, dict]:
    """The stage of ``ran`` again (a copy), the evaluation now scoring the shared real BraTS cases, one slice each."""
    samples = shared_folder("data", "brats-samples")
    run_dir = tmp_path_factory.mktemp("real") / "ci"
    shutil.copytree(ran[0], run_dir)
    stamps = {path: path.stat().st_mtime_ns for path in (run_dir / "beyond" / "variants").glob("*/model.keras")}
    _publish_evaluation(run_dir, real_eval_root=str(samples), real_eval_slices=1, real_files={"case": ["digest 1"]})
    return run_dir, beyond.run(run_dir, _params(), progress=False), stamps


def test_every_network_is_scored_on_real_anatomy_without_retraining(ran, ran_real):
    run_dir, result, stamps = ran_real
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps  # every network reused
    assert len(list((run_dir / "beyond" / "stress").iterdir())) == 1  # and the stress tests
    real = result.run_metrics[result.run_metrics["split"] == "real"]
    assert result.real_run and set(real["subject"]) == {"BraTS-GLI-00000-000", "BraTS2021_00006", "Brats17_2013_27_1"}
    assert real.groupby(["variant", "seed"]).size().tolist() == [3 * len(KINDS)] * 3
    assert np.isfinite(real[["psnr", "ssim", "lpips"]].to_numpy()).all()
    pd.testing.assert_frame_equal(result.runs, ran[1].runs)
    table = result.ablation.set_index("variant")
    assert table.loc["main", "real_psnr_difference"] == 0.0 and table.loc["no_guide", "real_n_subjects"] == 3
    ours, main = (real[(real["variant"] == v) & (real["seed"] == 0)]["psnr"].mean() for v in ("no_guide", "main"))
    assert table.loc["no_guide", "real_psnr_difference"] == pytest.approx(ours - main)
    assert (
        table.loc["no_guide", "real_psnr"] == pytest.approx(ours) and 0 < table.loc["no_guide", "real_p_subjects"] <= 1
    )
    shown = ablation_display(result.ablation, split="real")
    assert list(shown.index) == ["main", "no_guide"] and "real glioma anatomy" in shown.attrs["caption"]
    (sentence,) = claim_sentences(result.ablation, split="real")
    assert sentence.startswith("'the FLAIR guide helps' on real anatomy") and "over 3 subjects" in sentence
    glue = result.glue_values
    assert glue["real_run"] is True and glue["real_psnr_gain_no_guide"] == table.loc["no_guide", "real_psnr_difference"]
    assert glue["real_claims"] == sentence
    assert glue["real_data"] == f"real glioma MRI under {shared_folder('data', 'brats-samples')} (3 cases)"


def test_the_real_maps_are_cached_per_cohort_and_key_the_stage(ran_real):
    run_dir, result, _ = ran_real
    synthesis = cache.current(run_dir, "synthesis")
    first = beyond.real_anatomy_output(run_dir, synthesis)
    assert first.complete and result.output.params["real_anatomy"]["key"] == first.key
    assert np.load(first.path / "guide.npy").shape == (3 * len(KINDS), 128, 128)
    record = cache.current(run_dir, "evaluation").params
    _publish_evaluation(run_dir, **(record | {"real_files": {"case": ["digest 2"]}}))  # a case file changed
    assert beyond.real_anatomy_output(run_dir, synthesis).key != first.key
    _publish_evaluation(run_dir, **(record | {"real_eval_slices": 2}))
    assert beyond.real_anatomy_output(run_dir, synthesis).key != first.key
    _publish_evaluation(run_dir, **record)
    assert beyond.real_anatomy_output(run_dir, synthesis).key == first.key
