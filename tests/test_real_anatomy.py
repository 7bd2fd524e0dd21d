"""The three real BraTS cases of ../shared (one per file layout) through find_cases, load_subject and the cohort."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mrsisr.anatomy.brats import find_cases
from mrsisr.anatomy.cohort import build_subject, cohort_specs
from mrsisr.anatomy.segmentation import PLAUSIBLE_FRACTIONS
from mrsisr.study.profiles import load_profile

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "brats-samples"
CASES = {
    "BraTS-GLI-00000-000": "BraTS 2023+",
    "BraTS2021_00006": "BraTS 2021",
    "Brats17_2013_27_1": "BraTS 2017/2018",
}


@pytest.fixture(scope="module")
def samples():
    if not SAMPLES.is_dir():
        pytest.skip(f"real BraTS samples: {SAMPLES} not found (they live in the shared data folder)")
    return SAMPLES


@pytest.fixture(scope="module")
def built(samples):
    params = load_profile("ci") | {"anatomy_source": "brats", "brats_root": str(samples), "n_subjects": 0}
    return {spec.subject: build_subject(spec, 2.0, "dipy_hmrf") for spec in cohort_specs(params)}


def test_find_cases_finds_the_three_layouts(samples):
    cases = find_cases(samples)
    assert {c.subject: c.release for c in cases} == CASES
    assert all(c.grade is None and c.grade_source == "labels" for c in cases)
    assert {c.subject: c.label_map for c in cases}["BraTS-GLI-00000-000"] == ((3, 4),)
    assert [c.subject for c in find_cases(samples / "BraTS2021_00006")] == ["BraTS2021_00006"]


def test_real_cases_segment_plausibly_on_their_world_grid(built, samples):
    assert set(built) == set(CASES)
    for name, (arrays, row) in built.items():
        for tissue, (lo, hi) in PLAUSIBLE_FRACTIONS.items():
            assert lo <= row[f"frac_{tissue}"] <= hi, f"{name} {tissue} {row[f'frac_{tissue}']:.3f}"
        assert set(np.unique(arrays["labels"])) == {0, 1, 2, 4}, name  # 2023's label 3 is mapped to 4
        assert row["grade"] == "HGG" and row["grade_source"] == "labels"
        assert arrays["t1"].shape == (120, 120, 78) and arrays["flair"].any()
        # the affine maps the grid's centre to the centre of the 1 mm file, in RAS+ mm
        (t1_file,) = (samples / name).glob("*t1*.nii.gz")
        source = nib.as_closest_canonical(nib.load(t1_file))
        centre_in = source.affine @ np.array([*(np.array(source.shape) - 1) / 2, 1.0])
        centre_out = arrays["affine"] @ np.array([*(np.array(arrays["t1"].shape) - 1) / 2, 1.0])
        np.testing.assert_allclose(centre_out, centre_in, atol=1e-6)
        assert np.all(np.diag(arrays["affine"])[:3] > 1.9)
