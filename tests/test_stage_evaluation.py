"""Evaluation stage (mrsisr.stages.evaluation) end to end: a tiny real model on a small test split, cached."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from mrsisr.anatomy.phantom import make_phantom
from mrsisr.maps.kspace import fourier_resample
from mrsisr.maps.lowres import make_lowres
from mrsisr.maps.synthesis import KINDS
from mrsisr.network.model import build_model
from mrsisr.scoring.figures import plot_figure3
from mrsisr.scoring.tables import RESULT_FILES
from mrsisr.stages.evaluation import CONSISTENT, FIGURE_FILE, EvaluationResult, run
from mrsisr.study import cache
from mrsisr.study.atomic import save_npy, save_text
from mrsisr.study.profiles import load_profile, stage_parameters

METHODS = ["spline", "kspace"]
N_SUBJECTS = 2


def _params(**overrides):
    return stage_parameters("evaluation", load_profile("ci", {"methods": METHODS, **overrides}))


def _publish_segmentation(run_dir: Path) -> None:
    """A published segmentation output: the anatomy grid and classifier real cases are built with (3 mm: fast)."""
    params = stage_parameters("segmentation", load_profile("ci", {"anatomy_voxel_mm": 3.0})).model_dump()
    output = cache.stage_output(run_dir, "segmentation", params)
    output.mark_complete()
    cache.publish(run_dir, output)


def _publish_synthesis(run_dir: Path) -> None:
    """A published synthesis output (ci parameters) holding a test split: smooth maps, their k-space inputs, guides."""
    output = cache.stage_output(run_dir, "synthesis", stage_parameters("synthesis", load_profile("ci")).model_dump())
    n = len(KINDS) * N_SUBJECTS
    hr = ndimage.gaussian_filter(np.random.default_rng(0).random((n, 128, 128)), (0, 6, 6))
    hr -= hr.min(axis=(1, 2), keepdims=True)
    hr = (hr / hr.max(axis=(1, 2), keepdims=True)).astype(np.float32)
    save_npy(output.path / "test_hr.npy", hr)
    save_npy(output.path / "test_lr.npy", make_lowres(hr, 32, "kspace").astype(np.float32))
    save_npy(output.path / "test_guide.npy", np.clip(1.0 - hr, 0.0, 1.0))
    meta = pd.DataFrame(
        {
            "subject": [f"s{i // len(KINDS):02d}" for i in range(n)],
            "grade": ["HGG" if i // len(KINDS) % 2 else "LGG" for i in range(n)],
            "slice": 20,
            "kind": KINDS * N_SUBJECTS,
            "scale": 1.0,
        }
    )
    save_text(output.path / "test_meta.csv", meta.to_csv(index=False))
    output.mark_complete()
    cache.publish(run_dir, output)


def _publish_training(run_dir: Path, seed: int = 0) -> cache.StageOutput:
    """A published training output with a tiny real network (untrained: its tail is zero, it upsamples in k-space)."""
    output = cache.stage_output(run_dir, "training", {"fake": "tiny", "seed": seed})
    build_model(width=8, mid_width=4, n_pairs=1).save(output.path / "model.keras")
    output.mark_complete()
    cache.publish(run_dir, output)
    return output


def _write_nifti(path: Path, data: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.diag([2.0, 2.0, 2.0, 1.0])), path)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> tuple[Path, EvaluationResult]:
    run_dir = tmp_path_factory.mktemp("runs") / "ci"
    _publish_segmentation(run_dir)
    _publish_synthesis(run_dir)
    _publish_training(run_dir)
    return run_dir, run(run_dir, _params())


def test_stage_writes_and_publishes(evaluated) -> None:
    run_dir, result = evaluated
    output = result.output
    assert output.complete and cache.current(run_dir, "evaluation").key == output.key
    assert set(output.upstream) == {"segmentation", "synthesis", "training"}
    assert list(output.params["methods"]) == METHODS and len(output.params["lpips_weights"]) > 0
    for name in (*RESULT_FILES, FIGURE_FILE):
        assert (run_dir / "evaluation" / name).read_bytes() == (output.path / name).read_bytes(), name
    metrics = result.metrics
    n = len(KINDS) * N_SUBJECTS
    assert metrics.groupby("method").size().to_dict() == {"model": n, CONSISTENT: n, **dict.fromkeys(METHODS, n)}
    assert np.isfinite(metrics[["mse", "psnr", "ssim", "lpips"]].to_numpy()).all()
    # the untrained network is a k-space upsampler: the model's scores are the kspace baseline's
    by_method = metrics.set_index(["method", "subject", "slice", "kind"])["mse"]
    np.testing.assert_allclose(by_method.loc["model"], by_method.loc["kspace"], rtol=1e-3, atol=1e-8)
    assert list(result.summary["method"]) == ["model", CONSISTENT, *METHODS]
    # k-space inputs: the data-consistent maps give back their input when truncated again
    consistent = result.figure[f"pred_{CONSISTENT}"]
    np.testing.assert_allclose(fourier_resample(consistent, 32), result.figure["lowres"], atol=1e-5)
    assert set(result.tables) == {"table2.csv", "table2_by_kind.csv", "table2_by_grade.csv", "statistics.csv"}
    glue = result.glue_values
    assert glue["n_maps"] == n and glue["real_run"] is False and np.isnan(glue["real_psnr_model"])
    assert result.real is None and not (result.output.path / "real").exists()
    assert glue["psnr_gain_db"] == pytest.approx(glue["psnr_model"] - glue["psnr_spline"])
    figure = result.figure
    assert figure["truth"].shape == (2, 128, 128) and figure["lowres"].shape == (2, 32, 32)
    assert {f"pred_{m}" for m in ("model", *METHODS)} <= set(figure) and len(set(figure["grade"])) == 2
    fig = plot_figure3(figure, "ci")
    assert len(fig.axes) >= 2 * 2 * 4
    plt.close(fig)


def test_stage_reuses_its_cache(evaluated) -> None:
    run_dir, result = evaluated
    stamps = {p.name: p.stat().st_mtime_ns for p in result.output.path.iterdir()}
    again = run(run_dir, _params())
    assert again.output.path == result.output.path
    assert {p.name: p.stat().st_mtime_ns for p in again.output.path.iterdir()} == stamps
    pd.testing.assert_frame_equal(again.metrics, result.metrics)


def test_corrupted_metrics_are_detected_and_rebuilt(evaluated, capsys) -> None:
    run_dir, result = evaluated
    metrics_csv = result.output.path / "metrics.csv"
    original = metrics_csv.read_bytes()
    metrics_csv.write_bytes(original.replace(b"model", b"modem", 1))
    assert not result.output.complete
    assert "metrics.csv changed on disk" in capsys.readouterr().out
    rebuilt = run(run_dir, _params())
    assert rebuilt.output.path == result.output.path and rebuilt.output.complete
    assert metrics_csv.read_bytes() == original  # the same inputs give the same bytes
    assert (run_dir / "evaluation" / "metrics.csv").read_bytes() == original


def test_missing_upstream_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="stage 'segmentation'"):
        run(tmp_path, _params())
    _publish_segmentation(tmp_path)
    with pytest.raises(FileNotFoundError, match="stage 'synthesis'"):
        run(tmp_path, _params())
    _publish_synthesis(tmp_path)
    with pytest.raises(FileNotFoundError, match="stage 'training'"):
        run(tmp_path, _params())


def test_real_anatomy_is_scored_beside_the_test_split(evaluated, tmp_path: Path, capsys) -> None:
    run_dir, base = evaluated
    phantom = make_phantom(5, "HGG")
    cases = tmp_path / "cases"
    cases.mkdir()
    for name in ("t1", "flair"):
        _write_nifti(cases / f"sub01_{name}.nii.gz", phantom[name])
    _write_nifti(cases / "sub01_seg.nii.gz", phantom["labels"])
    params = _params(methods=["spline"], real_eval_root=str(cases / "*_t1.nii.gz"), real_eval_slices=1)
    result = run(run_dir, params)
    assert result.output.path != base.output.path  # new parameters, new folder
    assert cache.current(run_dir, "evaluation").key == result.output.key
    assert set(result.metrics["method"]) == {"model", CONSISTENT, "spline"}
    real = result.real
    assert real is not None and real.output == result.output
    assert list(real.summary["method"]) == ["model", "model, no guide", "spline"]
    assert len(real.metrics) == 3 * len(KINDS) and set(real.metrics["subject"]) == {"sub01"}
    assert np.isfinite(real.metrics[["mse", "psnr", "ssim", "lpips"]].to_numpy()).all()
    assert real.figure["truth"].shape == (2, 128, 128) and "pred_model, no guide" in real.figure
    glue = result.glue_values
    assert glue["real_run"] is True and glue["real_n_maps"] == len(KINDS)
    unguided = real.summary.set_index("method").loc["model, no guide", "psnr_mean"]
    assert glue["real_guide_gain_db"] == pytest.approx(glue["real_psnr_model"] - unguided)
    assert glue["psnr_model"] == pytest.approx(result.summary.set_index("method").loc["model", "psnr_mean"])
    # the real part is covered by the cache's checksums like the rest
    real_metrics = result.output.path / "real" / "metrics.csv"
    real_metrics.write_text("damaged")
    assert not result.output.complete and "real/metrics.csv changed on disk" in capsys.readouterr().out


def test_a_new_model_gives_a_new_folder(evaluated) -> None:
    run_dir, base = evaluated
    _publish_training(run_dir, seed=1)
    retrained = run(run_dir, _params())
    assert retrained.output.path != base.output.path
    assert retrained.output.upstream["training"] == cache.current(run_dir, "training").key
