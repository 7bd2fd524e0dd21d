"""mrsisr.anatomy.alignment and scripts/flair_t1_alignment.py: how far a FLAIR lies from its T1."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from conftest import load_script
from scipy import ndimage

from mrsisr.anatomy.alignment import edge_alignment


def _volume(seed: int = 0, shape=(48, 48, 12)) -> np.ndarray:
    """Smooth blobs with sharp-ish edges: something with edges in every direction."""
    field = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), (3, 3, 1))
    return np.where(field > 0, 1.0, 0.3) + 0.1 * field


def test_a_known_shift_is_found_and_undone():
    fixed = _volume()
    moving = ndimage.shift(fixed, (1.0, -0.5, 0.0), order=1, mode="nearest") * 2.0 + 5.0  # another contrast too
    found = edge_alignment(fixed, moving, slices=[3, 6, 9])
    assert found.shift_vox == (-1.0, 0.5)
    assert found.correlation > found.correlation_at_zero + 0.1 and found.correlation > 0.95
    same = edge_alignment(fixed, fixed, slices=[6])
    assert same.shift_vox == (0.0, 0.0) and same.correlation == pytest.approx(1.0)


def test_volumes_that_do_not_match_are_refused():
    with pytest.raises(ValueError, match="one 3-D shape"):
        edge_alignment(_volume(), _volume()[:-1], slices=[3])
    with pytest.raises(ValueError, match="not within 0..11"):
        edge_alignment(_volume(), _volume(), slices=[12])


def test_the_script_reports_each_case_in_mm(tmp_path, capsys):
    t1 = _volume(1, (40, 40, 30))
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    case = tmp_path / "BraTS2021_00001"
    case.mkdir()
    flair = ndimage.shift(t1, (0.5, 0.0, 0.0), order=1, mode="nearest")
    for name, data in (("t1", t1), ("flair", flair), ("seg", np.zeros(t1.shape))):
        nib.save(nib.Nifti1Image(data.astype(np.float32), affine), case / f"BraTS2021_00001_{name}.nii.gz")
    assert load_script("flair_t1_alignment").main([str(tmp_path)]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0].split("\t")[:4] == ["case", "release", "shift_mm_axis0", "shift_mm_axis1"]
    assert rows[1].split("\t")[:4] == ["BraTS2021_00001", "BraTS 2021", "-0.500", "0.000"]

    nib.save(nib.Nifti1Image(flair[:-2].astype(np.float32), affine), case / "BraTS2021_00001_flair.nii.gz")
    assert load_script("flair_t1_alignment").main([str(tmp_path)]) == 1
    assert "BraTS2021_00001_flair.nii.gz: not on the voxel grid of" in capsys.readouterr().err
