"""`mrsisr upscale`: geometry of the output, units, masking, other matrix sizes, guides, bad input, atomic writes."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from mrsisr.cli import main
from mrsisr.mrsi.io import normalise_slices, world_corners
from mrsisr.network.model import build_model, load_model, predict
from mrsisr.upscale import upscale_file, upscaled_affine


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny unguided and a tiny guided network, saved as .keras files."""
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for guided in (False, True):
        model = build_model(width=8, mid_width=4, n_pairs=1, guided=guided)
        paths[guided] = folder / f"tiny_guided{guided}.keras"
        model.save(paths[guided])
    return paths


def brain_like_map(shape: tuple[int, int, int], units: float = 3000.0, seed: int = 0) -> np.ndarray:
    """A smooth positive map in arbitrary units with NaN outside an elliptical 'brain'."""
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    inside = x**2 / 0.8 + y**2 / 0.7 < 1
    rng = np.random.default_rng(seed)
    slices = [
        np.where(inside, units * (1.0 + 0.3 * np.cos(3 * x + k) + 0.05 * rng.random(x.shape)), np.nan)
        for k in range(shape[2])
    ]
    return np.stack(slices, axis=2).astype(np.float32)


def save_nifti(path, data, affine=None):
    if affine is None:
        affine = np.diag([-6.875, 6.875, 10.0, 1.0])
        affine[:3, 3] = [110.0, -100.0, -30.0]
    nib.save(nib.Nifti1Image(data, affine), path)
    return affine


def test_upscaled_affine_keeps_the_field_of_view():
    affine = np.array([[0.0, -3.4, 0.0, 80.0], [3.4, 0.0, 0.0, -90.0], [0.0, 0.0, 3.4, -40.0], [0, 0, 0, 1.0]])
    fine = upscaled_affine(affine)
    np.testing.assert_allclose(np.sqrt((fine[:3, :3] ** 2).sum(axis=0)), [0.85, 0.85, 3.4])
    np.testing.assert_allclose(world_corners((64, 64), affine), world_corners((256, 256), fine), atol=1e-9)
    # the centres of the 4 x 4 output voxels of input voxel (5, 7) lie inside it, centred on its centre
    centres = np.array([[4 * 5 + i, 4 * 7 + j, 2, 1.0] for i in range(4) for j in range(4)]) @ fine.T
    np.testing.assert_allclose(centres.mean(axis=0), affine @ np.array([5, 7, 2, 1.0]), atol=1e-9)
    old_voxels = centres @ np.linalg.inv(affine).T
    assert np.all(np.abs(old_voxels[:, :2] - [5, 7]) < 0.5)


def test_cli_upscale_restores_units_affine_and_mask(tmp_path, models, capsys):
    data = brain_like_map((32, 32, 3))
    data[:, :, 1] = np.nan  # a slice without data
    affine = save_nifti(tmp_path / "sub-01_NAA.nii.gz", data)
    out = tmp_path / "out" / "NAA_x4.nii.gz"
    status = main(["upscale", str(tmp_path / "sub-01_NAA.nii.gz"), "-o", str(out), "--model", str(models[False])])
    assert status == 0
    assert "masked" in capsys.readouterr().out
    image = nib.load(out)
    result = np.asarray(image.dataobj)
    assert result.shape == (128, 128, 3)
    ras = data[::-1]  # the input's x axis ran right -> left; the output is RAS+
    ras_affine = affine @ np.array([[-1, 0, 0, 31], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    np.testing.assert_allclose(image.affine, upscaled_affine(ras_affine), atol=1e-6)
    inside = np.repeat(np.repeat(np.isfinite(ras), 4, axis=0), 4, axis=1)
    assert np.all(np.isnan(result[~inside])) and np.all(np.isfinite(result[inside]))
    assert np.all(np.isnan(result[:, :, 1]))
    normalised, scales = normalise_slices(ras)
    expected = (
        predict(load_model(models[False]), np.moveaxis(normalised[:, :, [0, 2]], 2, 0)) * scales[[0, 2], None, None]
    )
    np.testing.assert_allclose(
        result[:, :, [0, 2]][inside[:, :, [0, 2]]], np.moveaxis(expected, 0, 2)[inside[:, :, [0, 2]]], rtol=1e-4
    )
    assert 0.5 < np.nanmedian(result) / np.nanmedian(data) < 2.0  # same units as the input


@pytest.mark.parametrize("shape", [(64, 64, 2), (32, 42, 2)])
def test_other_matrix_sizes_and_singleton_4d(tmp_path, models, shape):
    save_nifti(tmp_path / "tCho.nii", brain_like_map(shape)[..., None])
    out = upscale_file(tmp_path / "tCho.nii", tmp_path / "tCho_x4.nii", model_path=models[False])
    assert nib.load(out).shape == (4 * shape[0], 4 * shape[1], shape[2])


def test_guided_model_with_guide_on_the_output_grid(tmp_path, models):
    affine = save_nifti(tmp_path / "Cr+PCr.nii.gz", brain_like_map((16, 16, 2)))
    flair = np.random.default_rng(3).random((64, 64, 2)).astype(np.float32) * 900
    ras_affine = affine @ np.array([[-1, 0, 0, 15], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    save_nifti(tmp_path / "flair.nii.gz", flair, upscaled_affine(ras_affine))
    out = upscale_file(
        tmp_path / "Cr+PCr.nii.gz", tmp_path / "tCr_x4.nii.gz", guide=tmp_path / "flair.nii.gz", model_path=models[True]
    )
    assert nib.load(out).shape == (64, 64, 2)


def test_bad_inputs_leave_nothing_behind(tmp_path, models, capsys):
    save_nifti(tmp_path / "NAA.nii.gz", brain_like_map((16, 16, 2)))
    save_nifti(tmp_path / "flair_shifted.nii.gz", np.ones((64, 64, 2), dtype=np.float32))
    save_nifti(tmp_path / "NAA_2d.nii", np.ones((16, 16), dtype=np.float32))
    save_nifti(tmp_path / "NAA_allnan.nii", np.full((16, 16, 2), np.nan, dtype=np.float32))
    out = tmp_path / "out.nii.gz"
    cases = [
        (["NAA_2d.nii"], "expected a 3D volume"),
        (["NAA_allnan.nii"], "no valid voxel"),
        (["missing_NAA.nii"], "no such file"),
        (["NAA.nii.gz", "--model", str(models[True])], "FLAIR-guided"),
        (
            ["NAA.nii.gz", "--model", str(models[False]), "--guide", str(tmp_path / "flair_shifted.nii.gz")],
            "different grid",
        ),
        (["NAA.nii.gz", "--model", str(tmp_path / "NAA.nii.gz")], "not a Keras"),
    ]
    for arguments, message in cases:
        status = main(["upscale", str(tmp_path / arguments[0]), "-o", str(out), *arguments[1:]])
        assert status == 1
        assert message in capsys.readouterr().err
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_refuses_to_overwrite_without_force(tmp_path, models, capsys):
    save_nifti(tmp_path / "NAA.nii", brain_like_map((16, 16, 1)))
    out = tmp_path / "NAA_x4.nii"
    out.write_bytes(b"keep me")
    arguments = ["upscale", str(tmp_path / "NAA.nii"), "-o", str(out), "--model", str(models[False])]
    assert main(arguments) == 1
    assert "--force" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    assert main([*arguments, "--force"]) == 0
    assert nib.load(out).shape == (64, 64, 1)
    with pytest.raises(ValueError, match="must be NIfTI"):
        upscale_file(tmp_path / "NAA.nii", tmp_path / "NAA_x4.mnc", model_path=models[False])


def test_default_model_lookup(tmp_path, monkeypatch, models):
    from mrsisr.network import packaged as default_model

    monkeypatch.setattr(default_model, "DEFAULT_MODEL", tmp_path / "absent.keras")
    with pytest.raises(FileNotFoundError, match="train_default_model.py"):
        default_model.default_model_path()
    monkeypatch.setattr(default_model, "DEFAULT_MODEL", models[False])
    save_nifti(tmp_path / "NAA.nii", brain_like_map((16, 16, 1)))
    assert main(["upscale", str(tmp_path / "NAA.nii"), "-o", str(tmp_path / "NAA_x4.nii")]) == 0
    assert nib.load(tmp_path / "NAA_x4.nii").shape == (64, 64, 1)
