"""Validation stage (mrsisr.stages.validation_7t): slices, references, file discovery, the cached stage, Figure 4.

The stage runs end to end with a tiny real network, on real-style NIfTI files and on the simulated stand-in.
"""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mrsisr.maps.kspace import fourier_resample
from mrsisr.mrsi.io import check_same_field_of_view, load_mrsi_volume
from mrsisr.mrsi.standin_7t import STANDIN_LABEL, make_standin
from mrsisr.network import packaged
from mrsisr.network.model import build_model
from mrsisr.scoring.figures import plot_figure4
from mrsisr.stages.validation_7t import (
    EXPORTS,
    PAPER_MSE,
    ValidationResult,
    figure_slice,
    find_mrsi_files,
    run,
    validation_slices,
)
from mrsisr.study import cache
from mrsisr.study.profiles import load_profile, stage_parameters
from mrsisr.upscale import upscaled_affine

METHODS = ["nearest", "spline"]

AFFINE = np.diag([3.4, 3.4, 3.4, 1.0])


def write_maps(folder, n_slices: int = 3, seed: int = 0) -> None:
    """Three 64x64 metabolite maps (NaN outside a disc, empty top slice) and a 128x128 FLAIR on one field of view."""
    folder.mkdir(parents=True, exist_ok=True)
    x, y = np.meshgrid(np.linspace(-1, 1, 64), np.linspace(-1, 1, 64), indexing="ij")
    disc = x**2 + y**2 < 0.8
    rng = np.random.default_rng(seed)
    for name, level in (("NAA+NAAG", 9.0), ("Cr+PCr", 6.0), ("GPC+PCh", 1.5)):
        slices = [
            np.where(disc, level * (1 + 0.3 * np.sin(4 * x + k) + 0.05 * rng.random(x.shape)), np.nan)
            for k in range(n_slices)
        ]
        data = np.stack(slices, axis=2)
        data[:, :, -1] = np.nan
        nib.save(nib.Nifti1Image(data.astype(np.float32), AFFINE), folder / f"{name}_amp.nii.gz")
    flair = rng.random((128, 128, n_slices)).astype(np.float32) * 1000
    nib.save(nib.Nifti1Image(flair, upscaled_affine(AFFINE, 2)), folder / "flair.nii.gz")


def _params(**overrides):
    values = {"methods": METHODS, "val_min_brain_fraction": 0.3, **overrides}
    return stage_parameters("validation_7t", load_profile("ci", values))


def _publish_training(run_dir, guided: bool = True) -> cache.StageOutput:
    """A published training output holding a tiny real network."""
    trained = cache.stage_output(run_dir, "training", {"tiny": True, "guided": guided})
    build_model(width=8, mid_width=4, n_pairs=1, guided=guided).save(trained.path / "model.keras")
    trained.mark_complete()
    cache.publish(run_dir, trained)
    return trained


def test_validation_slices_follow_the_training_pipeline(tmp_path):
    write_maps(tmp_path)
    volume = load_mrsi_volume(tmp_path / "NAA+NAAG_amp.nii.gz")
    guide = load_mrsi_volume(tmp_path / "flair.nii.gz", guide=True)
    hr, lr, guides, meta = validation_slices(volume, "p1", "HGG", 0.3, guide)
    assert hr.shape == (2, 128, 128) and lr.shape == (2, 32, 32) and guides.shape == (2, 128, 128)
    assert list(meta["slice"]) == [0, 1] and set(meta["kind"]) == {"NAA"}
    assert hr.min() >= 0 and np.allclose(hr.max(axis=(1, 2)), 1.0)
    np.testing.assert_allclose(lr, fourier_resample(hr, 32), atol=1e-6)
    np.testing.assert_allclose(meta["scale"], np.nanmax(volume.data[:, :, :2], axis=(0, 1)))
    with pytest.raises(ValueError, match="no slice has a brain fraction"):
        validation_slices(volume, "p1", "HGG", 0.9)


def test_find_mrsi_files_groups_subjects_and_guides(tmp_path):
    write_maps(tmp_path / "patient1")
    write_maps(tmp_path / "patient2")
    (tmp_path / "patient2" / "notes.nii").write_bytes(b"")  # names no metabolite: ignored
    found = find_mrsi_files(tmp_path)
    assert sorted(found) == ["patient1", "patient2"]
    assert sorted(found["patient1"]) == ["NAA", "guide", "tCho", "tCr"]
    with pytest.raises(FileNotFoundError):
        find_mrsi_files(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no metabolite maps"):
        find_mrsi_files(_empty(tmp_path))


def _empty(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "flair.nii").write_bytes(b"")
    return folder


def test_stage_on_real_style_files_is_cached_and_plots_figure4(tmp_path, capsys):
    run_dir = tmp_path / "runs" / "ci"
    trained = _publish_training(run_dir)
    write_maps(tmp_path / "mrsi" / "p1")
    params = _params(mrsi_dir=str(tmp_path / "mrsi"))
    result = run(run_dir, params)
    assert isinstance(result, ValidationResult) and result.output.complete
    assert result.output.upstream == {"training": trained.key}
    metrics = pd.read_csv(result.output.path / "metrics.csv")
    assert set(metrics["method"]) == {"model", *METHODS}
    assert len(metrics) == 3 * 3 * 2  # methods x kinds x slices with brain
    assert np.all(np.isfinite(metrics[["mse", "ssim", "lpips"]].to_numpy()))
    for name in EXPORTS:
        assert (run_dir / "validation_7t" / name).read_bytes() == (result.output.path / name).read_bytes(), name
    assert cache.current(run_dir, "validation_7t").key == result.output.key
    record = result.record
    assert record["is_standin"] is False and record["guided"] is True and record["subjects"] == ["p1"]
    assert record["data"] == f"MRSI maps from {tmp_path / 'mrsi'}" and trained.key in record["model"]
    assert record["n_slices"] == 3 * 2 and record["data_short"] == "real MRSI"
    glue = result.glue_values
    assert glue["is_standin"] is False and glue["n_slices"] == 6
    assert glue["mse_spline"] == pytest.approx(result.summary.set_index("method").loc["spline", "mse_mean"])
    comparison = result.paper_comparison
    assert comparison.loc["nearest", "MSE, paper (7T, 2 patients)"] == PAPER_MSE["nearest"]
    assert list(comparison.index) == ["model", *METHODS]
    assert set(result.tables) == {"table2.csv", "table2_by_kind.csv", "statistics.csv"}
    # reused, then rebuilt to the same bytes when a file of the cache is damaged
    stamps = {p.name: p.stat().st_mtime_ns for p in result.output.path.iterdir()}
    again = run(run_dir, params)
    assert again.output.key == result.output.key
    assert {p.name: p.stat().st_mtime_ns for p in again.output.path.iterdir()} == stamps
    slices_csv = result.output.path / "slices.csv"
    original = slices_csv.read_bytes()
    slices_csv.write_bytes(original + b"p1,9,NAA,HGG,1.0,1.0\n")
    rebuilt = run(run_dir, params)
    assert "slices.csv changed on disk" in capsys.readouterr().out
    assert rebuilt.output.key == result.output.key and slices_csv.read_bytes() == original
    # Figure 4: every kind of the first subject at one slice, with the guide
    data = result.figure
    assert data["reference"].shape == (3, 128, 128) and "guide" in data
    assert sorted(data["kinds"]) == ["NAA", "tCho", "tCr"] and len(set(data["slice"].ravel())) == 1
    fig = plot_figure4(data, ["model", "spline", "nearest"], "test")
    assert len([ax for ax in fig.axes if ax.images]) == 3 * 5 + 3 * 3 + 1  # maps, errors, guide (colour bars aside)
    plt.close(fig)


def test_figure_slice_prefers_the_highest_choline():
    meta = pd.DataFrame(
        {
            "subject": "p1",
            "slice": [0, 1, 2, 0, 1, 2],
            "kind": ["tCho"] * 3 + ["NAA"] * 3,
            "scale": [1.0, 3.0, 2.0, 9.0, 9.0, 9.0],
            "brain_fraction": [0.5, 0.5, 0.2, 0.5, 0.5, 0.2],  # slice 2 has too little brain
        }
    )
    assert list(figure_slice(meta)) == [1, 4]


def test_stage_on_the_standin(tmp_path):
    run_dir = tmp_path / "runs" / "ci"
    _publish_training(run_dir)
    params = _params(val_min_brain_fraction=0.45)
    result = run(run_dir, params)
    record = result.record
    assert record["is_standin"] is True and record["data"] == STANDIN_LABEL and record["subjects"] == ["standin"]
    assert record["data_short"] == "STAND-IN (simulated)" and record["guided"] is True
    assert 0 < record["n_slices"] == len(pd.read_csv(result.output.path / "slices.csv"))
    assert set(result.summary["method"]) == {"model", *METHODS} and result.glue_values["is_standin"] is True
    assert "guide" in result.figure and result.figure["reference"].shape == (3, 128, 128)
    # the stand-in files the stage wrote and read back: geometry of the Vienna maps, one field of view
    folder = result.output.path / "standin"
    assert sorted(p.name for p in folder.iterdir()) == ["NAA.nii.gz", "flair.nii.gz", "tCho.nii.gz", "tCr.nii.gz"]
    flair = load_mrsi_volume(folder / "flair.nii.gz", guide=True)
    assert flair.data.shape == (128, 128, 39)
    for kind in ("NAA", "tCr", "tCho"):
        volume = load_mrsi_volume(folder / f"{kind}.nii.gz")
        assert volume.data.shape == (64, 64, 39)
        np.testing.assert_allclose(volume.voxel_mm, 3.4)
        assert 0.1 < volume.mask.mean() < 0.6  # brain inside, NaN outside
        check_same_field_of_view(volume, flair)
    # the stand-in of these parameters, simulated again, is the same bit for bit
    standin = make_standin(params.seed, params.standin_grade, params.standin_noise)
    assert standin["label"] == STANDIN_LABEL and "STAND-IN" in STANDIN_LABEL
    np.testing.assert_array_equal(
        np.asarray(nib.load(folder / "tCho.nii.gz").dataobj), standin["maps"]["tCho"], err_msg="tCho"
    )


def test_without_guide_the_packaged_unguided_model_is_used(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    _publish_training(run_dir, guided=True)
    write_maps(tmp_path / "mrsi")
    flair = tmp_path / "flair.nii.gz"
    (tmp_path / "mrsi" / "flair.nii.gz").rename(flair)
    params = _params(mrsi_dir=str(tmp_path / "mrsi"), methods=["spline"])
    real_default = packaged.DEFAULT_MODEL
    monkeypatch.setattr(packaged, "DEFAULT_MODEL", tmp_path / "absent.keras")
    with pytest.raises(FileNotFoundError, match="no packaged default model"):
        run(run_dir, params)
    monkeypatch.setattr(packaged, "DEFAULT_MODEL", real_default)  # the shipped model is unguided
    result = run(run_dir, params)
    record = json.loads((result.output.path / "validation.json").read_text())
    assert record["guided"] is False and "packaged unguided" in record["model"]
    assert record["is_standin"] is False and record["n_slices"] == 6
    assert "guide" not in result.figure
    write_maps(tmp_path / "mrsi" / "second")
    with pytest.raises(ValueError, match="mrsi_guide .* given for 2 subjects"):
        run(run_dir, _params(mrsi_dir=str(tmp_path / "mrsi"), mrsi_guide=str(flair)))
