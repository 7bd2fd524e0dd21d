"""Metabolite synthesis: formula values against hand-computed cases, ratios, grades, bad input."""

import numpy as np
import pytest

from mrsisr.maps.synthesis import (
    KINDS,
    draw_subject_values,
    hard_tissue_classes,
    literature_values,
    normalise_maps,
    peak_to_concentration_ratio,
    synthesize_maps,
    table1,
)


def _voxels(labels):
    n = len(labels)
    gm = np.array([1.0, 0.0, 0.0, 0.5] + [0.0] * (n - 4))
    wm = np.array([0.0, 1.0, 0.0, 0.5] + [0.0] * (n - 4))
    csf = np.array([0.0, 0.0, 1.0, 0.0] + [0.0] * (n - 4))
    return gm, wm, csf, np.array(labels)


def test_normal_tissue_follows_the_partial_volume_formula():
    gm, wm, csf, labels = _voxels([0, 0, 0, 0])
    values = draw_subject_values("HGG", np.random.default_rng(3))
    maps = synthesize_maps(gm, wm, csf, labels, "HGG", np.random.default_rng(3))
    for name in ("tCho", "tCr", "NAA"):
        assert maps[name][0] == pytest.approx(values[f"GM_{name}"], rel=1e-6)
        assert maps[name][1] == pytest.approx(values[f"WM_{name}"], rel=1e-6)
        assert maps[name][2] == 0.0  # CSF holds no signal
        assert maps[name][3] == pytest.approx(0.5 * values[f"GM_{name}"] + 0.5 * values[f"WM_{name}"], rel=1e-6)
    assert maps["tCho/tCr"][1] == pytest.approx(values["WM_tCho"] / values["WM_tCr"], rel=1e-6)
    assert maps["tCho/NAA"][2] == 0.0  # below the denominator floor


def test_drawn_concentrations_stay_inside_the_literature_ranges():
    table = literature_values()["concentrations"]
    for seed in range(20):
        values = draw_subject_values("LGG", np.random.default_rng(seed))
        for tissue in ("GM", "WM"):
            for name in ("tCho", "tCr", "NAA"):
                low, high = table[tissue][name]["range"]
                assert low <= values[f"{tissue}_{name}"] <= high


def test_tumour_ratios_split_at_the_mean_of_the_reported_range():
    ranges = literature_values()["tumour_peak_ratios"]
    for seed in range(20):
        for grade in ("LGG", "HGG"):
            values = draw_subject_values(grade, np.random.default_rng(seed))
            for ratio in ("tCho/tCr", "tCho/NAA"):
                low, high = ranges[ratio][grade]["range"]
                peak = values[f"tumour_{ratio}"] * 3  # concentration ratio back to a peak ratio (9 vs 3 protons)
                mean = 0.5 * (low + high)
                assert (low <= peak <= mean) if grade == "LGG" else (mean <= peak <= high)


def test_peak_ratio_conversion_uses_proton_counts():
    assert peak_to_concentration_ratio("tCho", "tCr", 3.0) == pytest.approx(1.0)


def test_tumour_necrosis_and_oedema():
    gm, wm, csf, labels = _voxels([0, 0, 0, 0, 4, 1, 2])
    values = draw_subject_values("HGG", np.random.default_rng(0))
    maps = synthesize_maps(gm, wm, csf, labels, "HGG", np.random.default_rng(0))
    tcr = values["WM_tCr"]
    assert maps["tCr"][4] == pytest.approx(tcr, rel=1e-6)
    assert maps["tCho"][4] == pytest.approx(values["tumour_tCho/tCr"] * tcr, rel=1e-6)
    assert maps["tCho/NAA"][4] == pytest.approx(values["tumour_tCho/NAA"], rel=1e-5)
    for name in ("tCho", "tCr", "NAA"):
        assert maps[name][5] == pytest.approx(0.2 * values[f"WM_{name}"], rel=1e-6)  # necrosis
        assert maps[name][6] == pytest.approx(0.8 * values[f"WM_{name}"], rel=1e-6)  # oedema
    assert maps["tCho/tCr"][6] == pytest.approx(maps["tCho/tCr"][1], rel=1e-6)
    assert maps["tCho"][4] > 2 * maps["tCho"][1]  # tumour choline well above normal white matter


def test_low_grade_core_is_tumour_not_necrosis():
    gm, wm, csf, labels = _voxels([0, 0, 0, 0, 1])
    maps = synthesize_maps(gm, wm, csf, labels, "LGG", np.random.default_rng(0))
    assert maps["tCho"][4] > maps["tCho"][1]


def test_works_on_volumes_and_returns_every_kind():
    shape = (4, 5, 6)
    gm, wm = np.full(shape, 0.4), np.full(shape, 0.5)
    maps = synthesize_maps(gm, wm, 1 - gm - wm, np.zeros(shape, np.uint8), "HGG", np.random.default_rng(0))
    assert tuple(maps) == KINDS
    assert all(m.shape == shape and m.dtype == np.float32 for m in maps.values())


def test_bad_input():
    gm, wm, csf, labels = _voxels([0, 0, 0, 0])
    with pytest.raises(ValueError, match="labels hold values"):
        synthesize_maps(gm, wm, csf, np.array([0, 3, 0, 0]), "HGG", np.random.default_rng(0))
    with pytest.raises(ValueError, match="one shape"):
        synthesize_maps(gm[:3], wm, csf, labels, "HGG", np.random.default_rng(0))
    with pytest.raises(ValueError, match="grade"):
        synthesize_maps(gm, wm, csf, labels, "GBM", np.random.default_rng(0))


def test_table1_lists_every_value_with_a_source():
    table = table1()
    assert {"tissue", "quantity", "value", "source"} <= set(table.columns)
    assert len(table) == 9 + 4 + len(literature_values()["assumptions"])
    assert table["source"].str.len().min() > 0


def test_hard_classes_take_the_largest_fraction():
    gm = np.array([0.6, 0.3, 0.1, 0.5, 0.0])
    wm = np.array([0.3, 0.6, 0.1, 0.5, 0.0])
    csf = np.array([0.1, 0.1, 0.8, 0.0, 0.0])
    hard_gm, hard_wm, hard_csf = hard_tissue_classes(gm, wm, csf)
    np.testing.assert_array_equal(hard_gm, [1, 0, 0, 1, 0])  # a tie goes to GM
    np.testing.assert_array_equal(hard_wm, [0, 1, 0, 0, 0])
    np.testing.assert_array_equal(hard_csf, [0, 0, 1, 0, 0])  # no fraction at all (background): no class


def test_hard_tissue_model_gives_only_the_tissue_concentrations():
    rng = np.random.default_rng(5)
    gm = rng.uniform(0.0, 1.0, 200)
    wm = (1.0 - gm) * rng.uniform(0.0, 1.0, 200)
    csf = 1.0 - gm - wm
    labels = np.zeros(200, np.uint8)
    values = draw_subject_values("LGG", np.random.default_rng(1))
    hard = synthesize_maps(gm, wm, csf, labels, "LGG", np.random.default_rng(1), tissue_model="hard")
    soft = synthesize_maps(gm, wm, csf, labels, "LGG", np.random.default_rng(1))
    for name in ("tCho", "tCr", "NAA"):
        pure = np.array([values[f"GM_{name}"], values[f"WM_{name}"], 0.0], np.float32)
        assert set(np.unique(hard[name])) <= set(pure)  # nothing between the pure tissues
        assert len(np.unique(soft[name])) > 100  # partial volume: a continuum
    winner = np.argmax(np.stack([gm, wm, csf]), axis=0)
    np.testing.assert_array_equal(hard["tCr"] == np.float32(values["WM_tCr"]), winner == 1)


def test_default_tissue_model_is_partial_volume_bit_for_bit():
    gm, wm, csf, labels = _voxels([0, 0, 0, 0, 4, 1, 2])
    default = synthesize_maps(gm, wm, csf, labels, "HGG", np.random.default_rng(7))
    explicit = synthesize_maps(gm, wm, csf, labels, "HGG", np.random.default_rng(7), tissue_model="partial_volume")
    for kind in KINDS:
        np.testing.assert_array_equal(default[kind], explicit[kind])
    with pytest.raises(ValueError, match="tissue_model"):
        synthesize_maps(gm, wm, csf, labels, "HGG", np.random.default_rng(7), tissue_model="fuzzy")


def test_normalise_maps_divides_by_each_maximum():
    maps = np.stack([np.full((4, 4), 2.0), np.zeros((4, 4))])
    maps[0, 1, 1] = 4.0
    normalised, scale = normalise_maps(maps)
    np.testing.assert_array_equal(scale, [4.0, 0.0])
    assert normalised[0].max() == 1.0 and normalised[0, 0, 0] == 0.5 and not normalised[1].any()
