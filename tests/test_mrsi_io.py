"""Reading metabolite-map volumes: NIfTI and MINC2, names, orientation, masking, normalisation, grids, bad files;
data consistency."""

from __future__ import annotations

import h5py
import nibabel as nib
import numpy as np
import pytest

from mrsisr.maps.kspace import fourier_resample
from mrsisr.mrsi.consistency import data_consistency_error, enforce_data_consistency
from mrsisr.mrsi.io import (
    axial_problem,
    check_same_field_of_view,
    from_ras,
    load_mrsi_volume,
    metabolite_from_name,
    normalise_slices,
    orientation_code,
    world_corners,
)
from mrsisr.upscale import upscaled_affine


def write_minc2(path, data_zyx: np.ndarray, steps_zyx, starts_zyx) -> None:
    """Write the minimal MINC2 (HDF5) structure nibabel reads (fixed-length ASCII attributes, as libminc writes)."""
    with h5py.File(path, "w") as f:
        minc = f.create_group("minc-2.0")
        dims = minc.create_group("dimensions")
        for name, step, start in zip(("zspace", "yspace", "xspace"), steps_zyx, starts_zyx, strict=True):
            dim = dims.create_dataset(name, data=0)
            dim.attrs["step"] = float(step)
            dim.attrs["start"] = float(start)
            dim.attrs["spacing"] = np.bytes_("regular__")
            cosines = {"xspace": [1.0, 0, 0], "yspace": [0, 1.0, 0], "zspace": [0, 0, 1.0]}[name]
            dim.attrs["direction_cosines"] = np.array(cosines)
        image = minc.create_group("image").create_group("0")
        dataset = image.create_dataset("image", data=data_zyx.astype(np.float32))
        dataset.attrs["dimorder"] = np.bytes_("zspace,yspace,xspace")
        image.create_dataset("image-max", data=float(np.nanmax(data_zyx)))
        image.create_dataset("image-min", data=float(np.nanmin(data_zyx)))


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("NAA+NAAG_amp_map.mnc", "NAA"),
        ("sub-01_tNAA.nii.gz", "NAA"),
        ("Cr+PCr.mnc", "tCr"),
        ("patient2_tCr_conc.nii", "tCr"),
        ("GPC+PCh_amp.mnc", "tCho"),
        ("cho.nii.gz", "tCho"),
        ("flair.nii.gz", None),
        ("NAAG_only.nii", None),
    ],
)
def test_metabolite_from_name(name, kind):
    assert metabolite_from_name(name) == kind


def test_metabolite_from_name_rejects_two_metabolites():
    with pytest.raises(ValueError, match="several metabolites"):
        metabolite_from_name("Cho_NAA_ratio.nii")


def test_nifti_3d_reoriented_to_ras_with_masking(tmp_path):
    data = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3) + 1
    data[0, 0, 0], data[1, 0, 0], data[2, 0, 0] = np.nan, np.inf, -3.0
    affine = np.diag([-2.0, 3.0, 4.0, 1.0])  # x runs right -> left
    affine[:3, 3] = [10.0, -5.0, 2.0]
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "tCho.nii.gz")
    volume = load_mrsi_volume(tmp_path / "tCho.nii.gz")
    assert volume.metabolite == "tCho"
    assert (volume.n_nan, volume.n_inf, volume.n_negative) == (1, 1, 1)
    assert "3 of 60 voxels masked (1 NaN, 1 infinite, 1 negative)" in volume.mask_message
    assert volume.affine[0, 0] == pytest.approx(2.0)
    # the same world point holds the same value
    for voxel in ([3, 4, 2], [0, 1, 1]):
        world = affine @ np.array([*voxel, 1.0])
        ras_voxel = np.rint(np.linalg.inv(volume.affine) @ world).astype(int)[:3]
        assert volume.data[tuple(ras_voxel)] == data[tuple(voxel)]
    assert np.isnan(volume.data).sum() == 3
    np.testing.assert_allclose(volume.voxel_mm, [2.0, 3.0, 4.0])


def test_singleton_4d_and_explicit_metabolite(tmp_path):
    data = np.random.default_rng(0).random((6, 6, 2, 1)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "map.nii")
    volume = load_mrsi_volume(tmp_path / "map.nii", metabolite="Cr+PCr")
    assert volume.data.shape == (6, 6, 2)
    assert volume.metabolite == "tCr"
    np.testing.assert_array_equal(volume.data, data[..., 0])


def test_minc2_read_matches_written_array_and_geometry(tmp_path):
    rng = np.random.default_rng(1)
    data_xyz = rng.random((8, 6, 4)).astype(np.float32) * 7
    data_xyz[0, :, :] = np.nan
    path = tmp_path / "NAA+NAAG.mnc"
    write_minc2(path, np.transpose(data_xyz, (2, 1, 0)), steps_zyx=(3.4, 3.4, 3.4), starts_zyx=(-50.0, -60.0, -70.0))
    volume = load_mrsi_volume(path)
    assert volume.metabolite == "NAA"
    assert volume.data.shape == (8, 6, 4)
    np.testing.assert_array_equal(volume.data, data_xyz)
    expected = np.diag([3.4, 3.4, 3.4, 1.0])
    expected[:3, 3] = [-70.0, -60.0, -50.0]
    np.testing.assert_allclose(volume.affine, expected)
    assert volume.n_nan == 6 * 4


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".mnc"])
def test_truncated_files_give_clear_errors(tmp_path, suffix):
    source = tmp_path / f"full{suffix}"
    data = np.ones((16, 16, 4), dtype=np.float32)
    if suffix == ".mnc":
        write_minc2(source, data, (1, 1, 1), (0, 0, 0))
    else:
        nib.save(nib.Nifti1Image(data, np.eye(4)), source)
    broken = tmp_path / f"NAA{suffix}"
    broken.write_bytes(source.read_bytes()[: len(source.read_bytes()) // 3])
    with pytest.raises(ValueError, match=f"NAA{suffix}.*cannot be read"):
        load_mrsi_volume(broken)


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_mrsi_volume(tmp_path / "NAA.nii")
    (tmp_path / "NAA.txt").write_text("1 2 3")
    with pytest.raises(ValueError, match="not a NIfTI or MINC2 file"):
        load_mrsi_volume(tmp_path / "NAA.txt")
    nib.save(nib.Nifti1Image(np.ones((8, 8), dtype=np.float32), np.eye(4)), tmp_path / "NAA_2d.nii")
    with pytest.raises(ValueError, match=r"expected a 3D volume .* shape \(8, 8\)"):
        load_mrsi_volume(tmp_path / "NAA_2d.nii")
    nib.save(nib.Nifti1Image(np.ones((8, 8, 2, 5), dtype=np.float32), np.eye(4)), tmp_path / "NAA_4d.nii")
    with pytest.raises(ValueError, match="expected a 3D volume"):
        load_mrsi_volume(tmp_path / "NAA_4d.nii")
    nib.save(nib.Nifti1Image(np.full((8, 8, 2), np.nan, dtype=np.float32), np.eye(4)), tmp_path / "NAA_nan.nii")
    with pytest.raises(ValueError, match="no valid voxel"):
        load_mrsi_volume(tmp_path / "NAA_nan.nii")
    nib.save(nib.Nifti1Image(np.zeros((0, 8, 2), dtype=np.float32), np.eye(4)), tmp_path / "NAA_empty.nii")
    with pytest.raises(ValueError, match="empty"):
        load_mrsi_volume(tmp_path / "NAA_empty.nii")
    nib.save(nib.Nifti1Image(np.ones((8, 8, 2), dtype=np.float32), np.eye(4)), tmp_path / "unnamed.nii")
    with pytest.raises(ValueError, match="does not name a metabolite"):
        load_mrsi_volume(tmp_path / "unnamed.nii")
    with pytest.raises(ValueError, match="unknown metabolite"):
        load_mrsi_volume(tmp_path / "unnamed.nii", metabolite="lactate")


def test_normalise_slices_keeps_the_scale():
    data = np.random.default_rng(2).random((5, 5, 3)) * np.array([10.0, 0.001, 1.0])
    data[0, 0, :] = np.nan
    data[:, :, 2] = np.nan
    normalised, scales = normalise_slices(data)
    assert normalised.dtype == np.float32
    assert np.isnan(scales[2]) and np.all(normalised[:, :, 2] == 0)
    np.testing.assert_allclose(normalised[:, :, :2].max(axis=(0, 1)), 1.0)
    np.testing.assert_allclose((normalised * np.nan_to_num(scales))[1:, :, :2], data[1:, :, :2], rtol=1e-6)
    assert np.all(normalised[0, 0, :] == 0)


def test_field_of_view_check(tmp_path):
    affine = np.diag([6.875, 6.875, 10.0, 1.0])
    nib.save(nib.Nifti1Image(np.ones((8, 8, 3), dtype=np.float32), affine), tmp_path / "NAA.nii")
    fine = upscaled_affine(affine)
    nib.save(nib.Nifti1Image(np.ones((32, 32, 3), dtype=np.float32), fine), tmp_path / "flair.nii")
    shifted = fine.copy()
    shifted[0, 3] += 5.0
    nib.save(nib.Nifti1Image(np.ones((32, 32, 3), dtype=np.float32), shifted), tmp_path / "flair_shifted.nii")
    nib.save(nib.Nifti1Image(np.ones((32, 32, 4), dtype=np.float32), fine), tmp_path / "flair_slices.nii")
    volume = load_mrsi_volume(tmp_path / "NAA.nii")
    guide = load_mrsi_volume(tmp_path / "flair.nii", guide=True)
    np.testing.assert_allclose(world_corners(volume.data.shape, volume.affine), world_corners((32, 32), fine))
    check_same_field_of_view(volume, guide)
    for name, message in (("flair_shifted.nii", "differ by up to 5.00 mm"), ("flair_slices.nii", "4 slices")):
        with pytest.raises(ValueError, match=f"{name} is on a different grid.*{message}"):
            check_same_field_of_view(volume, load_mrsi_volume(tmp_path / name, guide=True))


def test_from_ras_undoes_the_reorientation_of_any_axis_order(tmp_path):
    data = np.random.default_rng(4).random((4, 5, 3)).astype(np.float32) + 0.1
    affine = np.array([[0, -2.0, 0, 10], [0, 0, -4.0, 5], [3.0, 0, 0, -2], [0, 0, 0, 1]])  # axes permuted and flipped
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "NAA.nii")
    volume = load_mrsi_volume(tmp_path / "NAA.nii")
    np.testing.assert_array_equal(volume.file_affine, affine)
    np.testing.assert_array_equal(from_ras(volume.data, volume.file_affine), data)
    assert orientation_code(affine) == "SLP" and orientation_code(volume.affine) == "RAS"


def test_no_spatial_information_is_refused(tmp_path):
    image = nib.Nifti1Image(np.ones((8, 8, 2), dtype=np.float32), None)  # no affine: both codes stay 0
    nib.save(image, tmp_path / "NAA.nii")
    with pytest.raises(ValueError, match=r"NAA.nii: has no spatial orientation \(NIfTI qform and sform codes"):
        load_mrsi_volume(tmp_path / "NAA.nii")


def test_axial_problem_names_the_orientation(tmp_path):
    axial = np.diag([-6.875, 6.875, 10.0, 1.0])
    sagittal = np.array([[0, 0, 10.0, 0], [6.875, 0, 0, 0], [0, 6.875, 0, 0], [0, 0, 0, 1]])
    for name, affine in (("NAA.nii", axial), ("tCr.nii", sagittal)):
        nib.save(nib.Nifti1Image(np.ones((8, 8, 2), dtype=np.float32), affine), tmp_path / name)
    assert axial_problem(load_mrsi_volume(tmp_path / "NAA.nii")) is None
    problem = axial_problem(load_mrsi_volume(tmp_path / "tCr.nii"))
    assert problem.startswith(f"{tmp_path / 'tCr.nii'}: the slices are not axial (voxel axes ASR")
    assert "file axis 2, is 90 degrees" in problem
    write_minc2(tmp_path / "Cho.mnc", np.ones((2, 8, 8)), (10.0, 6.875, 6.875), (0, 0, 0))  # slices first
    volume = load_mrsi_volume(tmp_path / "Cho.mnc")
    assert volume.slice_axis == 0 and axial_problem(volume) is None


def test_any_name_accepts_other_metabolites_and_ratios(tmp_path):
    for name in ("Ins.nii", "NAA_Cr.nii", "tCho.nii"):
        nib.save(nib.Nifti1Image(np.ones((8, 8, 2), dtype=np.float32), np.eye(4)), tmp_path / name)
    assert load_mrsi_volume(tmp_path / "Ins.nii", any_name=True).metabolite == "Ins"
    assert load_mrsi_volume(tmp_path / "NAA_Cr.nii", any_name=True).metabolite == "NAA_Cr"
    assert load_mrsi_volume(tmp_path / "tCho.nii", any_name=True).metabolite == "tCho"
    assert load_mrsi_volume(tmp_path / "Ins.nii", metabolite="myo-inositol", any_name=True).metabolite == "myo-inositol"


@pytest.mark.parametrize("shape", [(32, 32), (32, 42), (31, 33)])
def test_enforce_data_consistency_is_exact_and_keeps_the_detail(shape):
    rng = np.random.default_rng(5)
    lr = rng.random((2, *shape))
    hr = rng.random((2, 4 * shape[0], 4 * shape[1]))
    assert data_consistency_error(hr, lr) > 0.3
    consistent = enforce_data_consistency(hr, lr)
    assert data_consistency_error(consistent, lr) < 1e-6
    np.testing.assert_allclose(fourier_resample(consistent, shape), lr, atol=1e-5)
    weights = np.array([1e30, 1.0])
    assert data_consistency_error(consistent, lr, mask=lr > 0.5, weights=weights) < 1e-6
