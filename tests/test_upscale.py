"""`mrsisr upscale` on one file: geometry and voxel order, units, masking, clipping, sidecar, guides, hostile input."""

from __future__ import annotations

import hashlib
import json

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


def test_cli_upscale_keeps_voxel_order_units_affine_and_mask(tmp_path, models, capsys):
    data = brain_like_map((32, 32, 3))
    data[:, :, 1] = np.nan  # a slice without data
    affine = save_nifti(tmp_path / "sub-01_NAA.nii.gz", data)
    out = tmp_path / "out" / "NAA_x4.nii.gz"
    status = main(["upscale", str(tmp_path / "sub-01_NAA.nii.gz"), "-o", str(out), "--model", str(models[False])])
    assert status == 0
    printed = capsys.readouterr().out
    assert "masked" in printed and f"wrote {out} (128, 128, 3) LAS and NAA_x4.json" in printed
    image = nib.load(out)
    result = np.asarray(image.dataobj)
    assert result.shape == (128, 128, 3)
    assert nib.aff2axcodes(image.affine) == nib.aff2axcodes(affine) == ("L", "A", "S")  # the input's voxel order
    np.testing.assert_array_equal(image.affine, upscaled_affine(affine))  # exact
    inside = np.repeat(np.repeat(np.isfinite(data), 4, axis=0), 4, axis=1)
    assert np.all(np.isnan(result[~inside])) and np.all(np.isfinite(result[inside]))
    assert np.all(np.isnan(result[:, :, 1])) and np.nanmin(result) >= 0
    ras = data[::-1]  # the network sees RAS+ slices; the file's x axis runs right -> left
    normalised, scales = normalise_slices(ras)
    expected = (
        predict(load_model(models[False]), np.moveaxis(normalised[:, :, [0, 2]], 2, 0)) * scales[[0, 2], None, None]
    )
    expected = np.maximum(np.moveaxis(expected, 0, 2), 0)[::-1]  # clipped at 0, back in the file's order
    np.testing.assert_allclose(result[:, :, [0, 2]][inside[:, :, [0, 2]]], expected[inside[:, :, [0, 2]]], rtol=1e-4)
    assert 0.5 < np.nanmedian(result) / np.nanmedian(data) < 2.0  # same units as the input


def test_lpi_input_gives_lpi_output_in_the_same_world_positions(tmp_path, models):
    data = brain_like_map((16, 20, 3))
    affine = np.diag([-6.875, -6.875, -10.0, 1.0])
    affine[:3, 3] = [50.0, 60.0, 20.0]
    save_nifti(tmp_path / "tCr.nii.gz", data, affine)
    out = upscale_file(tmp_path / "tCr.nii.gz", tmp_path / "tCr_x4.nii.gz", model_path=models[False])
    image = nib.load(out)
    assert nib.aff2axcodes(image.affine) == ("L", "P", "I") and image.shape == (64, 80, 3)
    np.testing.assert_array_equal(image.affine, upscaled_affine(affine))
    # the 4 x 4 output voxels of input voxel (3, 5, 1) sit inside it and keep its neighbourhood's value
    block = np.asarray(image.dataobj)[12:16, 20:24, 1]
    assert np.all(np.abs(block / data[3, 5, 1] - 1) < 0.25)
    centres = np.array([[12 + i, 20 + j, 1, 1.0] for i in range(4) for j in range(4)]) @ image.affine.T
    assert np.all(np.abs(centres @ np.linalg.inv(affine).T - [3, 5, 1, 1])[:, :2] < 0.5)
    np.testing.assert_allclose(centres.mean(axis=0), affine @ [3, 5, 1, 1.0], atol=1e-9)


def test_zero_background_stays_zero_negatives_clipped_and_sidecar(tmp_path, models):
    data = np.nan_to_num(brain_like_map((32, 32, 2)), nan=0.0)  # FSL-MRS style: 0 outside the brain
    data[10, 10, 0] = np.nan  # a failed fit
    save_nifti(tmp_path / "NAA.nii.gz", data)
    out = upscale_file(
        tmp_path / "NAA.nii.gz",
        tmp_path / "x4" / "NAA.nii.gz",
        model_path=models[False],
        command="mrsisr upscale NAA.nii.gz -o x4/NAA.nii.gz",
    )
    result = np.asarray(nib.load(out).dataobj)
    zero = np.repeat(np.repeat(data == 0, 4, axis=0), 4, axis=1)
    nan = np.repeat(np.repeat(np.isnan(data), 4, axis=0), 4, axis=1)
    assert np.all(result[zero] == 0) and np.all(np.isnan(result[nan])) and np.nanmin(result) >= 0
    sidecar = json.loads((tmp_path / "x4" / "NAA.json").read_text())
    assert sidecar["input_sha256"] == hashlib.sha256((tmp_path / "NAA.nii.gz").read_bytes()).hexdigest()
    assert sidecar["model_sha256"] == hashlib.sha256(models[False].read_bytes()).hexdigest()
    assert sidecar["command"] == "mrsisr upscale NAA.nii.gz -o x4/NAA.nii.gz"
    assert sidecar["clipped_negative_voxels"] >= 0 and sidecar["masked_input_voxels"]["nan"] == 1
    assert "not measured" in sidecar["notice"] and sidecar["mrsisr_version"]
    assert 0 < sidecar["data_consistency"]["relative_rms_error"] < 0.2
    assert sidecar["data_consistency"]["enforced"] is False and sidecar["orientation"] == "LAS"


def test_data_consistency_flag(tmp_path, models):
    save_nifti(tmp_path / "NAA.nii.gz", brain_like_map((32, 32, 2)))
    plain = upscale_file(tmp_path / "NAA.nii.gz", tmp_path / "plain.nii.gz", model_path=models[False])
    kept = upscale_file(
        tmp_path / "NAA.nii.gz", tmp_path / "dc.nii.gz", model_path=models[False], data_consistency=True
    )
    plain_card = json.loads((tmp_path / "plain.json").read_text())["data_consistency"]
    card = json.loads((tmp_path / "dc.json").read_text())["data_consistency"]
    assert card["enforced"] is True
    assert card["relative_rms_error_before_constraints"] < 1e-6 < plain_card["relative_rms_error_before_constraints"]
    assert np.nanmin(np.asarray(nib.load(kept).dataobj)) >= 0
    assert not np.array_equal(np.asarray(nib.load(plain).dataobj), np.asarray(nib.load(kept).dataobj), equal_nan=True)


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


def test_default_model_lookup_checks_the_sha256_and_says_phantom_only(tmp_path, monkeypatch, models, capsys):
    from mrsisr.network import packaged

    monkeypatch.setattr(packaged, "DEFAULT_MODEL", tmp_path / "absent.keras")
    with pytest.raises(FileNotFoundError, match="train_default_model.py"):
        packaged.default_model_path()
    monkeypatch.setattr(packaged, "DEFAULT_MODEL", models[False])
    card = tmp_path / "card.json"
    monkeypatch.setattr(packaged, "DEFAULT_MODEL_CARD", card)
    card.write_text(json.dumps({"sha256": "0" * 64}))
    save_nifti(tmp_path / "NAA.nii", brain_like_map((16, 16, 1)))
    assert main(["upscale", str(tmp_path / "NAA.nii"), "-o", str(tmp_path / "NAA_x4.nii")]) == 1
    err = capsys.readouterr().err
    assert f"packaged model {models[False]} is damaged or was replaced" in err and "0" * 64 in err
    assert not (tmp_path / "NAA_x4.nii").exists()
    card.write_text(json.dumps({"sha256": hashlib.sha256(models[False].read_bytes()).hexdigest()}))
    assert main(["upscale", str(tmp_path / "NAA.nii"), "-o", str(tmp_path / "NAA_x4.nii")]) == 0
    assert "trained on simulated phantom maps only" in capsys.readouterr().out
    assert nib.load(tmp_path / "NAA_x4.nii").shape == (64, 64, 1)
    assert json.loads((tmp_path / "NAA_x4.json").read_text())["packaged_model"] is True


def test_the_shipped_model_matches_its_card():
    from mrsisr.network.packaged import DEFAULT_MODEL_CARD, default_model_card, default_model_path

    card = default_model_card()
    assert default_model_path().is_file()  # the sha256 check passes
    for field in ("git_commit", "library_versions", "keras_backend", "dataset_stage_key", "trained_on"):
        assert field in card, f"{DEFAULT_MODEL_CARD} lacks {field}"
    assert "/work" not in card["command"] and "phantom" in card["trained_on"]
