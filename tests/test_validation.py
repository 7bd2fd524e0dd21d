"""Validation protocol (notebook 05): slices, references, file discovery, the cached stage and Figure 4."""

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
from mrsisr.mrsi.io import load_mrsi_volume
from mrsisr.network.model import build_model
from mrsisr.stages.validation_7t import find_mrsi_files, plot_figure4, run_validation, validation_slices
from mrsisr.study.cache import publish, stage_output
from mrsisr.upscale import upscaled_affine

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


def test_stage_on_real_style_files_is_cached_and_plots_figure4(tmp_path):
    run_dir = tmp_path / "run"
    trained = stage_output(run_dir, "model", {"tiny": True})
    build_model(width=8, mid_width=4, n_pairs=1, guided=True).save(trained.path / "model.keras")
    trained.mark_complete()
    publish(run_dir, trained)
    write_maps(tmp_path / "mrsi" / "p1")
    output = run_validation(
        run_dir, mrsi_dir=str(tmp_path / "mrsi"), methods=["nearest", "spline"], min_brain_fraction=0.3
    )
    metrics = pd.read_csv(output.path / "metrics.csv")
    assert set(metrics["method"]) == {"model", "nearest", "spline"}
    assert len(metrics) == 3 * 3 * 2  # methods x kinds x slices with brain
    assert np.all(np.isfinite(metrics[["mse", "ssim", "lpips"]].to_numpy()))
    assert (run_dir / "validation" / "table2.csv").is_file()
    assert run_validation(run_dir, mrsi_dir=str(tmp_path / "mrsi"), methods=["nearest", "spline"]).key == output.key
    data = dict(np.load(output.path / "figure4.npz"))
    assert data["reference"].shape == (3, 128, 128) and "guide" in data
    fig = plot_figure4(data, ["model", "spline", "nearest"], "test")
    assert len(fig.axes) == 3 * 8
    plt.close(fig)


def test_standin_volume_geometry_and_label(tmp_path):
    pytest.importorskip("mrsisr.maps.synthesis")
    from mrsisr.mrsi.io import check_same_field_of_view
    from mrsisr.mrsi.standin_7t import STANDIN_LABEL, make_standin, write_standin

    standin = make_standin(seed=0)
    assert "STAND-IN" in STANDIN_LABEL and standin["label"] == STANDIN_LABEL
    paths = write_standin(tmp_path, standin)
    maps = {kind: load_mrsi_volume(paths[kind]) for kind in ("NAA", "tCr", "tCho")}
    flair = load_mrsi_volume(paths["flair"], guide=True)
    for volume in maps.values():
        assert volume.data.shape == (64, 64, 39)
        np.testing.assert_allclose(volume.voxel_mm, 3.4)
        assert 0.1 < volume.mask.mean() < 0.6  # brain inside, NaN outside
        check_same_field_of_view(volume, flair)
    assert flair.data.shape == (128, 128, 39)
    again = make_standin(seed=0)
    np.testing.assert_array_equal(again["maps"]["tCho"], standin["maps"]["tCho"])


def test_without_guide_the_packaged_unguided_model_is_used(tmp_path, monkeypatch):
    from mrsisr.network import packaged as default_model

    run_dir = tmp_path / "run"
    trained = stage_output(run_dir, "model", {"tiny": True})
    build_model(width=8, mid_width=4, n_pairs=1, guided=True).save(trained.path / "model.keras")
    trained.mark_complete()
    publish(run_dir, trained)
    write_maps(tmp_path / "mrsi")
    (tmp_path / "mrsi" / "flair.nii.gz").unlink()
    monkeypatch.setattr(default_model, "DEFAULT_MODEL", tmp_path / "absent.keras")
    with pytest.raises(FileNotFoundError, match="no packaged default model"):
        run_validation(run_dir, mrsi_dir=str(tmp_path / "mrsi"), methods=["spline"])
    build_model(width=8, mid_width=4, n_pairs=1, guided=False).save(tmp_path / "unguided.keras")
    monkeypatch.setattr(default_model, "DEFAULT_MODEL", tmp_path / "unguided.keras")
    output = run_validation(run_dir, mrsi_dir=str(tmp_path / "mrsi"), methods=["spline"])
    record = json.loads((output.path / "validation.json").read_text())
    assert record["guided"] is False and "packaged unguided" in record["model"]
    assert record["is_standin"] is False and record["n_slices"] == 6
    assert "guide" not in np.load(output.path / "figure4.npz")
