"""Augmentation: the square's symmetries keep map, guide and target aligned; guide randomisation and dropout."""

from __future__ import annotations

import numpy as np
from conftest import smooth_maps
from scipy import ndimage

from mrsisr.network.augment import GuideRanges, augment_batch, drop_guides, perturb_guides

IDENTITY = GuideRanges(gamma=(1.0, 1.0), scale=(1.0, 1.0), blur_sigma_px=(0.0, 0.0), max_shift_px=0, noise_sd=(0, 0))


def test_symmetries_keep_map_guide_and_target_aligned():
    lr, guide, hr = smooth_maps(6, seed=0, size=64, sigma=4)
    for seed in range(8):
        a_lr, a_guide, a_hr = augment_batch(lr, guide, hr, np.random.default_rng(seed))
        np.testing.assert_allclose(a_hr.reshape(6, 16, 4, 16, 4).mean(axis=(2, 4)), a_lr, atol=1e-6)
        np.testing.assert_allclose(a_guide, 1.0 - a_hr, atol=1e-6)
    transforms = {augment_batch(lr, None, hr, np.random.default_rng(s))[2].tobytes() for s in range(40)}
    assert len(transforms) == 8  # the 8 symmetries of the square all occur


def test_perturbed_guides_keep_their_shape_and_follow_the_seed():
    guide = smooth_maps(5, seed=1, size=64, sigma=4)[1]
    first = perturb_guides(guide, np.random.default_rng(7))
    assert first.shape == guide.shape and first.dtype == np.float32
    np.testing.assert_array_equal(first, perturb_guides(guide, np.random.default_rng(7)))
    assert not np.array_equal(first, perturb_guides(guide, np.random.default_rng(8)))
    assert not np.allclose(first, guide, atol=1e-3)
    assert np.abs(first - guide).max() < 1.0  # perturbed, not replaced


def test_zero_strength_perturbation_is_the_identity():
    guide = smooth_maps(3, seed=2, size=64, sigma=4)[1]
    np.testing.assert_array_equal(perturb_guides(guide, np.random.default_rng(0), IDENTITY), guide)


def test_shifts_move_each_guide_by_at_most_the_range():
    guide = smooth_maps(8, seed=3, size=64, sigma=4)[1]
    shifted = perturb_guides(guide, np.random.default_rng(1), GuideRanges(**{**vars(IDENTITY), "max_shift_px": 1}))
    moves = []
    for before, after in zip(guide, shifted, strict=True):
        candidates = {
            (dy, dx): ndimage.shift(before, (dy, dx), order=0, mode="nearest") for dy in (-1, 0, 1) for dx in (-1, 0, 1)
        }
        moves += [move for move, image in candidates.items() if np.array_equal(image, after)]
    assert len(moves) == len(guide) and len(set(moves)) > 1


def test_gamma_and_blur_do_what_they_say():
    guide = smooth_maps(2, seed=4, size=64, sigma=4)[1].astype(np.float64)
    gamma_2 = GuideRanges(**{**vars(IDENTITY), "gamma": (2.0, 2.0)})
    np.testing.assert_allclose(perturb_guides(guide, np.random.default_rng(0), gamma_2), guide**2, atol=1e-6)
    blur_1 = GuideRanges(**{**vars(IDENTITY), "blur_sigma_px": (1.0, 1.0)})
    blurred = ndimage.gaussian_filter(guide, (0, 1, 1))
    np.testing.assert_allclose(perturb_guides(guide, np.random.default_rng(0), blur_1), blurred, atol=1e-6)


def test_guide_dropout_zeroes_whole_guides_at_its_rate():
    guide = np.ones((2000, 4, 4), np.float32)
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    assert drop_guides(guide, rng, 0.0) is guide and rng.bit_generator.state == state  # no draw at probability 0
    dropped = drop_guides(guide, rng, 0.25)
    kept = dropped.reshape(len(guide), -1).max(axis=1)
    assert set(np.unique(dropped)) == {0.0, 1.0} and set(np.unique(kept)) == {0.0, 1.0}  # all or nothing per map
    assert abs((kept == 0).mean() - 0.25) < 0.04
    assert not drop_guides(guide, rng, 1.0).any()
    np.testing.assert_array_equal(
        drop_guides(guide, np.random.default_rng(5), 0.3), drop_guides(guide, np.random.default_rng(5), 0.3)
    )
