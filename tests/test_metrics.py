"""Per-map metrics: definitions, hand-computed values and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from skimage.metrics import structural_similarity

from mrsisr.scoring.metrics import METRIC_NAMES, error_maps, lpips_distance, per_map_metrics


@pytest.fixture(scope="module")
def maps() -> np.ndarray:
    smooth = ndimage.gaussian_filter(np.random.default_rng(1).random((3, 64, 64)), (0, 2, 2))
    smooth -= smooth.min(axis=(1, 2), keepdims=True)
    return (smooth / smooth.max(axis=(1, 2), keepdims=True)).astype(np.float32)


def test_identical_maps_are_perfect(maps: np.ndarray) -> None:
    table = per_map_metrics(maps, maps)
    assert list(table.columns) == list(METRIC_NAMES)
    assert (table["mse"] == 0).all() and (table["rmse"] == 0).all()
    assert np.isinf(table["psnr"]).all() and np.isinf(table["psnr_authors"]).all()
    np.testing.assert_allclose(table[["ssim", "ssim_authors"]], 1.0)
    np.testing.assert_allclose(table["lpips"], 0.0, atol=1e-6)


def test_hand_computed_constant_offset() -> None:
    truth = np.zeros((32, 32), dtype=np.float32)
    truth[:, 16:] = 0.5  # range 0.5
    table = per_map_metrics(truth + 0.1, truth)
    assert table["mse"].iloc[0] == pytest.approx(0.01, rel=1e-5)
    assert table["rmse"].iloc[0] == pytest.approx(0.1, rel=1e-5)
    assert table["psnr"].iloc[0] == pytest.approx(20.0, rel=1e-5)
    assert table["psnr_range"].iloc[0] == pytest.approx(10 * np.log10(0.25 / 0.01), rel=1e-5)


def test_authors_definitions_by_hand() -> None:
    truth = np.zeros((32, 32), dtype=np.float32)
    truth[:, 16:] = 0.8  # peak 0.8
    pred = truth.copy()
    pred[:16, :] += 0.3  # overshoots to 1.1 where truth is 0.8: unclipped error 0.3 on half the map
    row = per_map_metrics(pred, truth).iloc[0]
    raw_mse = 0.5 * 0.3**2  # the authors' code scores the prediction as given
    assert row["psnr_authors"] == pytest.approx(20 * np.log10(1.1) - 10 * np.log10(raw_mse), rel=1e-5)
    clipped_mse = (16 * 16 * 0.3**2 + 16 * 16 * 0.2**2) / (32 * 32)  # 1.1 clipped to 1.0: error 0.2 there
    assert row["mse"] == pytest.approx(clipped_mse, rel=1e-5)
    assert row["psnr"] == pytest.approx(-10 * np.log10(clipped_mse), rel=1e-5)
    expected = structural_similarity(pred.astype(np.float64), truth.astype(np.float64), data_range=1.1 - 0.0)
    assert row["ssim_authors"] == pytest.approx(expected, rel=1e-6)
    assert per_map_metrics(np.full((32, 32), 0.5), np.full((32, 32), 0.5))["ssim_authors"].iloc[0] == 1.0


def test_authors_psnr_equals_psnr_for_clipped_maps_spanning_the_unit_range(maps: np.ndarray) -> None:
    table = per_map_metrics(np.clip(maps[::-1] * 1.05, 0, 1), maps)  # truth maps span [0, 1]: peak 1
    np.testing.assert_allclose(table["psnr_authors"], table["psnr"], rtol=1e-9)


def test_predictions_are_clipped_before_scoring() -> None:
    truth = np.full((32, 32), 1.0, dtype=np.float32)
    assert per_map_metrics(truth + 0.3, truth)["mse"].iloc[0] == 0.0
    np.testing.assert_allclose(error_maps(np.array([[-0.5, 0.7]]), np.array([[0.0, 0.5]])), [[0.0, 0.2]])


def test_metrics_are_symmetric_for_maps_in_range(maps: np.ndarray) -> None:
    forward, backward = per_map_metrics(maps[0], maps[1]), per_map_metrics(maps[1], maps[0])
    for name in ("mse", "psnr", "ssim", "lpips"):
        assert forward[name].iloc[0] == pytest.approx(backward[name].iloc[0], rel=1e-5)


def test_lpips_grey_equals_repeated_rgb_and_batches(maps: np.ndarray) -> None:
    grey = lpips_distance(maps[0], maps[1])
    rgb = lpips_distance(np.repeat(maps[0][..., None], 3, -1), np.repeat(maps[1][..., None], 3, -1))
    assert grey == pytest.approx(rgb, abs=1e-6) and grey > 0.01
    batch = lpips_distance(maps, maps[::-1])
    assert batch.shape == (3,) and batch[1] == pytest.approx(0.0, abs=1e-6)
    assert batch[0] == pytest.approx(lpips_distance(maps[0], maps[2]), abs=1e-6)
    assert batch[2] == pytest.approx(batch[0], abs=1e-6)


@pytest.mark.parametrize(
    ("pred", "truth", "message"),
    [
        (np.zeros((8, 8)), np.zeros((8, 9)), "shape"),
        (np.full((8, 8), np.nan), np.zeros((8, 8)), "NaN"),
        (np.zeros((8, 8)), np.full((8, 8), np.inf), "NaN or infinite"),
        (np.zeros((8, 8)), np.full((8, 8), 1.5), r"outside \[0, 1\]"),
        (np.zeros((0, 8, 8)), np.zeros((0, 8, 8)), "non-empty"),
    ],
)
def test_bad_input_raises(pred: np.ndarray, truth: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        per_map_metrics(pred, truth)


def test_lpips_rejects_values_outside_unit_range_and_tiny_images() -> None:
    with pytest.raises(ValueError, match="outside"):
        lpips_distance(np.full((32, 32), 2.0), np.zeros((32, 32)))
    with pytest.raises(ValueError, match="at least 31x31"):
        lpips_distance(np.zeros((16, 16)), np.zeros((16, 16)))


def test_metrics_without_lpips_are_the_same_less_that_column():
    rng = np.random.default_rng(3)
    truth = rng.uniform(0, 1, (2, 40, 40)).astype(np.float32)
    pred = np.clip(truth + rng.normal(0, 0.05, truth.shape), 0, 1.2).astype(np.float32)
    full, light = per_map_metrics(pred, truth), per_map_metrics(pred, truth, with_lpips=False)
    assert list(light.columns) == [name for name in METRIC_NAMES if name != "lpips"]
    pd.testing.assert_frame_equal(full.drop(columns="lpips"), light)
