"""Dataset stage: split by subject, normalisation, determinism, manifest, bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from mrsisr.stages.synthesis import figure_maps, load_split, normalise, run_dataset_stage, split_subjects
from mrsisr.study import cache
from mrsisr.study.atomic import save_npz, save_text
from mrsisr.study.profiles import load_profile


def _fake_subject(rng, with_tumour=True):
    shape = (56, 64, 40)
    brain = np.zeros(shape, bool)
    brain[8:48, 8:56, 6:34] = True
    gm = np.where(brain, rng.uniform(0.2, 0.5, shape), 0.0)
    wm = np.where(brain, 0.9 - gm, 0.0)
    csf = np.where(brain, 1.0 - gm - wm, 0.0)
    labels = np.zeros(shape, np.uint8)
    if with_tumour:
        labels[20:30, 24:34, 14:26] = 2
        labels[23:27, 27:31, 17:23] = 4
    flair = np.where(brain, 100.0, 0.0) + 150.0 * (labels > 0)
    gm, wm, csf = (np.where(labels > 0, 0.0, a) for a in (gm, wm, csf))
    return {
        "t1": flair,
        "flair": flair.astype(np.float32),
        "labels": labels,
        "brain": brain,
        "gm": gm.astype(np.float32),
        "wm": wm.astype(np.float32),
        "csf": csf.astype(np.float32),
        "voxel_mm": np.full(3, 2.0),
    }


def _fake_anatomy(run_dir, n=6, tumour_free=()):
    output = cache.stage_output(run_dir, "anatomy", {"fake": n, "tumour_free": list(tumour_free)})
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        name = f"s{i:02d}"
        save_npz(output.path / f"{name}.npz", **_fake_subject(rng, with_tumour=i not in tumour_free))
        rows.append({"subject": name, "grade": "HGG" if i % 2 else "LGG", "source": "phantom"})
    save_text(output.path / "subjects.csv", pd.DataFrame(rows).to_csv(index=False))
    output.mark_complete()
    cache.publish(run_dir, output)
    return output


def _params(**changes):
    params = load_profile("ci")
    params.update(n_test_subjects=2, slices_min=2, slices_max=3, **changes)
    return params


def test_split_is_by_subject_without_leakage(tmp_path):
    _fake_anatomy(tmp_path)
    output = run_dataset_stage(tmp_path, _params(), progress=False)
    subjects = {split: set(load_split(output.path, split)[3]["subject"]) for split in ("train", "val", "test")}
    assert len(subjects["test"]) == 2 and subjects["train"] and subjects["val"]
    assert not (
        subjects["train"] & subjects["val"]
        or subjects["train"] & subjects["test"]
        or subjects["val"] & subjects["test"]
    )
    lr, guide, hr, meta = load_split(output.path, "train")
    assert lr.shape[1:] == (32, 32) and guide.shape[1:] == hr.shape[1:] == (128, 128)
    assert list(meta.columns) == ["subject", "grade", "slice", "kind", "scale"]
    assert hr.min() >= 0 and np.allclose(hr.max(axis=(1, 2)), 1.0)
    assert 0 <= guide.min() and guide.max() <= 1
    assert (meta.groupby(["subject", "slice"]).size() == 5).all()
    test_meta = load_split(output.path, "test")[3]
    assert (test_meta.groupby("subject")["slice"].nunique() == 1).all()


def test_same_parameters_give_the_same_bytes_and_a_changed_one_a_new_folder(tmp_path):
    _fake_anatomy(tmp_path / "a")
    _fake_anatomy(tmp_path / "b")
    first = run_dataset_stage(tmp_path / "a", _params(), progress=False)
    second = run_dataset_stage(tmp_path / "b", _params(), progress=False)
    for split in ("train", "val", "test"):
        for name in ("lr", "guide", "hr"):
            assert (first.path / f"{split}_{name}.npy").read_bytes() == (
                second.path / f"{split}_{name}.npy"
            ).read_bytes()
    manifest = json.loads((first.path / "manifest.json").read_text())
    assert manifest["params"]["lowres_method"] == "kspace" and len(manifest["splits"]["train"]["sha256_hr"]) == 64
    changed = run_dataset_stage(tmp_path / "a", _params(lowres_method="block"), progress=False)
    assert changed.path != first.path
    assert not np.array_equal(load_split(changed.path, "test")[0], load_split(first.path, "test")[0])


def test_split_subjects_counts():
    subjects = pd.DataFrame({"subject": [f"s{i}" for i in range(20)]})
    splits = split_subjects(subjects, 5, 0.3, np.random.default_rng(0))
    assert [len(splits[s]) for s in ("train", "val", "test")] == [11, 4, 5]  # round(0.3 * 15) = 4 validation subjects
    with pytest.raises(ValueError, match="leaves no training subject"):
        split_subjects(subjects, 20, 0.3, np.random.default_rng(0))


def test_normalise_keeps_zero_maps():
    maps = np.stack([np.full((4, 4), 2.0), np.zeros((4, 4))])
    normed, scale = normalise(maps)
    assert normed.max() == 1.0 and np.all(normed[1] == 0) and list(scale) == [2.0, 0.0]


def test_tumour_free_subjects_are_skipped_and_listed(tmp_path):
    _fake_anatomy(tmp_path, n=6, tumour_free=(0,))
    output = run_dataset_stage(tmp_path, _params(), progress=False)
    assert json.loads((output.path / "manifest.json").read_text())["skipped_subjects"] == ["s00"]


def test_figure_maps_are_normalised(tmp_path):
    _fake_anatomy(tmp_path)
    maps, flair = figure_maps(tmp_path, _params(), "s01", 20)
    assert set(maps) == {"tCho", "tCr", "NAA", "tCho/NAA", "tCho/tCr"}
    assert all(m.max() == pytest.approx(1.0) for m in maps.values()) and flair.max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no subject 'nobody'"):
        figure_maps(tmp_path, _params(), "nobody", 20)


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="lowres_method"):
        run_dataset_stage(tmp_path, _params(lowres_method="cubic"), progress=False)
    with pytest.raises(FileNotFoundError, match="anatomy"):
        run_dataset_stage(tmp_path, _params(), progress=False)
    anatomy = _fake_anatomy(tmp_path)
    np.savez(anatomy.path / "s03.npz", flair=np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"s03\.npz: subject arrays lack"):
        run_dataset_stage(tmp_path, _params(), progress=False)
    with pytest.raises(ValueError, match="unknown split"):
        load_split(tmp_path, "holdout")
    with pytest.raises(FileNotFoundError, match="train_lr.npy"):
        load_split(tmp_path, "train")
