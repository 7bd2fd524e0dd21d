"""Slice selection and slab extraction onto the map grid."""

import numpy as np
import pytest

from mrsisr.maps.slices import MapGrid, brain_centre, candidate_slices, choose_slices, extract_slab, slab_voxels


def _subject(shape=(60, 60, 30)):
    brain = np.zeros(shape, bool)
    brain[10:50, 10:50, 5:25] = True
    flair = brain * 1.0
    labels = np.zeros(shape, np.uint8)
    labels[20:30, 20:30, 12:16] = 2
    flair[labels > 0] = 3.0
    return labels, flair, brain


def test_candidates_are_the_slabs_with_bright_tumour():
    labels, flair, brain = _subject()
    candidates = candidate_slices(labels, flair, brain, depth=1)
    np.testing.assert_array_equal(candidates, [12, 13, 14, 15])
    dark = np.where(labels > 0, 0.1, flair)  # tumour darker than the slice mean: not selected
    assert len(candidate_slices(labels, dark, brain, depth=1)) == 0
    assert set(candidate_slices(labels, flair, brain, depth=5)) >= {10, 17}


def test_choose_slices_spreads_and_respects_the_range():
    candidates = np.arange(20, 40)
    rng = np.random.default_rng(0)
    for _ in range(10):
        chosen = choose_slices(candidates, 5, 10, rng)
        assert 5 <= len(chosen) <= 10 and set(chosen) <= set(candidates)
    assert len(choose_slices(np.array([3, 4]), 5, 10, rng)) == 2
    with pytest.raises(ValueError):
        choose_slices(candidates, 0, 3, rng)


def test_slab_average_and_grid_centre():
    volume = np.zeros((110, 110, 10), np.float32)
    volume[:, :, 4] = 1.0  # one bright slice among the five of a 10 mm slab at 2 mm
    grid = MapGrid(size=128, fov_mm=220.0, thickness_mm=10.0)
    assert slab_voxels(10.0, 2.0) == 5
    out = extract_slab(volume, 4, np.array([2.0, 2.0, 2.0]), (54.5, 54.5), grid)
    assert out.shape == (128, 128)
    assert out[64, 64] == pytest.approx(0.2, abs=1e-6)


def test_orientation_anterior_up_and_x_along_columns():
    volume = np.zeros((110, 110, 1), np.float32)
    volume[80:, :, 0] = 1.0  # high x
    volume[:, 80:, 0] += 2.0  # anterior (high y)
    out = extract_slab(volume, 0, np.array([2.0, 2.0, 2.0]), (54.5, 54.5), MapGrid(thickness_mm=2.0))
    assert out[10, 64] == pytest.approx(2.0)  # top rows: anterior
    assert out[64, 120] == pytest.approx(1.0)  # right columns: high x


def test_brain_centre_needs_a_brain():
    with pytest.raises(ValueError, match="empty"):
        brain_centre(np.zeros((4, 4, 4), bool))


def test_zero_thickness_takes_one_anatomy_slice():
    volume = np.zeros((110, 110, 10), np.float32)
    volume[:, :, 4] = 1.0
    voxel, centre = np.array([2.0, 2.0, 2.0]), (54.5, 54.5)
    assert slab_voxels(0.0, 2.0) == slab_voxels(2.0, 2.0) == 1 and slab_voxels(2.0, 1.0) == 2
    one = extract_slab(volume, 4, voxel, centre, MapGrid(thickness_mm=0.0))
    slab = extract_slab(volume, 4, voxel, centre, MapGrid(thickness_mm=10.0))
    assert one[64, 64] == pytest.approx(1.0) and slab[64, 64] == pytest.approx(0.2)
    assert not extract_slab(volume, 3, voxel, centre, MapGrid(thickness_mm=0.0)).any()  # the neighbour only


def test_field_of_view_sets_the_pixel_size():
    volume = np.zeros((240, 240, 1), np.float32)
    volume[70:170, 70:170, 0] = 1.0  # a 100 mm square at 1 mm
    widths = {}
    for fov in (220.0, 240.0):
        grid = MapGrid(thickness_mm=0.0, fov_mm=fov)
        out = extract_slab(volume, 0, np.ones(3), (119.5, 119.5), grid)
        widths[fov] = int((out[64] > 0.5).sum())
        assert widths[fov] == pytest.approx(100.0 / grid.pixel_mm, abs=1)
    assert MapGrid(fov_mm=240.0).pixel_mm == 1.875 and widths[240.0] < widths[220.0]


def test_map_grid_rejects_impossible_values():
    for bad in ({"thickness_mm": -1.0}, {"fov_mm": 0.0}, {"size": 0}):
        with pytest.raises(ValueError, match="map grid needs"):
            MapGrid(**bad)
