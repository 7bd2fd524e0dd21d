"""Synthesis stage (mrsisr.stages.synthesis): split by subject, normalisation, determinism, cache keys, bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from mrsisr.maps import synthesis as map_synthesis
from mrsisr.maps.synthesis import KINDS
from mrsisr.stages.synthesis import SPLITS, SynthesisResult, figure_maps, load_split, run, split_subjects
from mrsisr.study import cache
from mrsisr.study.atomic import save_json, save_npz, save_text
from mrsisr.study.profiles import load_profile, stage_parameters


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


def _fake_segmentation(run_dir, n=6, tumour_free=()):
    """A published segmentation output with the files its read_result reads (subjects, Dice, timing, stage record)."""
    anatomy = stage_parameters("segmentation", load_profile("ci")).model_dump()
    output = cache.stage_output(run_dir, "segmentation", anatomy | {"fake": n, "tumour_free": list(tumour_free)})
    rng = np.random.default_rng(1)
    names = [f"s{i:02d}" for i in range(n)]
    for i, name in enumerate(names):
        save_npz(output.path / f"{name}.npz", **_fake_subject(rng, with_tumour=i not in tumour_free))
    grades = ["HGG" if i % 2 else "LGG" for i in range(n)]
    subjects = pd.DataFrame({"subject": names, "grade": grades, "source": "phantom"})
    save_text(output.path / "subjects.csv", subjects.to_csv(index=False))
    save_text(output.path / "dice.csv", "subject,dice_gm,dice_wm,dice_csf\n")
    timing = pd.DataFrame({"subject": names, "seconds_anatomy": 1.0, "seconds_segmentation": 2.0})
    save_text(output.path / "timing.csv", timing.to_csv(index=False))
    save_json(output.path / "stage.json", {"seconds": 3.0, "workers": 1, "subjects": n})
    output.mark_complete()
    cache.publish(run_dir, output)
    return output


def _params(**changes):
    return stage_parameters("synthesis", load_profile("ci", {"n_test_subjects": 2, "slices_min": 2, **changes}))


def test_split_is_by_subject_without_leakage(tmp_path):
    anatomy = _fake_segmentation(tmp_path)
    result = run(tmp_path, _params(), progress=False)
    assert isinstance(result, SynthesisResult) and result.output.complete
    path = result.output.path
    subjects = {split: set(load_split(path, split)[3]["subject"]) for split in SPLITS}
    assert len(subjects["test"]) == 2 and subjects["train"] and subjects["val"]
    assert not (
        subjects["train"] & subjects["val"]
        or subjects["train"] & subjects["test"]
        or subjects["val"] & subjects["test"]
    )
    assert set.union(*subjects.values()) == {f"s{i:02d}" for i in range(6)}
    lr, guide, hr, meta = load_split(path, "train")
    assert lr.shape[1:] == (32, 32) and guide.shape[1:] == hr.shape[1:] == (128, 128)
    assert lr.dtype == guide.dtype == hr.dtype == np.float32
    assert list(meta.columns) == ["subject", "grade", "slice", "kind", "lesion_mm2", "scale"]
    # the fake lesion is 10 x 10 voxels of 2 mm in every slice it spans: 400 mm^2 on the map grid too
    np.testing.assert_allclose(meta["lesion_mm2"], 400.0, rtol=0.02)
    assert hr.min() >= 0 and np.allclose(hr.max(axis=(1, 2)), 1.0) and (meta["scale"] > 0).all()
    assert 0 <= guide.min() and guide.max() <= 1
    assert (meta.groupby(["subject", "slice"]).size() == len(KINDS)).all()
    assert meta.groupby("subject")["slice"].nunique().between(2, 3).all()
    test_meta = load_split(path, "test")[3]
    assert (test_meta.groupby("subject")["slice"].nunique() == 1).all()
    # what notebook 02 shows
    counts = result.counts
    for split in SPLITS:
        assert counts.loc[split, "subjects"] == len(subjects[split])
        assert counts.loc[split, "maps"] == len(load_split(path, split)[3])
        assert counts.loc[split, "HGG maps"] + counts.loc[split, "LGG maps"] == counts.loc[split, "maps"]
    assert result.glue_values["n_subjects"] == 6 and result.glue_values["n_test_maps"] == 2 * len(KINDS)
    assert result.skipped == [] and set(result.lowres_examples) >= {"128x128 (truth)", "32x32, kspace"}
    assert all(v.shape == (32, 32) for k, v in result.lowres_examples.items() if k.startswith("32x32"))
    assert not result.table1.empty
    # the cache: keyed on the segmentation output, published with its manifest
    assert result.output.upstream == {"segmentation": anatomy.key}
    assert cache.current(tmp_path, "synthesis").key == result.output.key
    manifest = json.loads((tmp_path / "synthesis" / "manifest.json").read_text())
    assert manifest["anatomy_key"] == anatomy.key and manifest == json.loads((path / "manifest.json").read_text())


def test_same_parameters_give_the_same_bytes_and_a_changed_one_a_new_folder(tmp_path):
    _fake_segmentation(tmp_path / "a")
    _fake_segmentation(tmp_path / "b")
    first = run(tmp_path / "a", _params(), progress=False).output
    second = run(tmp_path / "b", _params(), progress=False).output
    assert first.key == second.key
    for split in SPLITS:
        for name in ("lr", "guide", "hr", "meta"):
            suffix = "csv" if name == "meta" else "npy"
            assert (first.path / f"{split}_{name}.{suffix}").read_bytes() == (
                second.path / f"{split}_{name}.{suffix}"
            ).read_bytes()
    manifest = json.loads((first.path / "manifest.json").read_text())
    assert manifest["params"]["lowres_method"] == "kspace" and len(manifest["splits"]["train"]["sha256_hr"]) == 64
    stamp = (first.path / "train_hr.npy").stat().st_mtime_ns
    assert run(tmp_path / "a", _params(), progress=False).output.path == first.path  # reused, not rebuilt
    assert (first.path / "train_hr.npy").stat().st_mtime_ns == stamp
    changed = run(tmp_path / "a", _params(lowres_method="block"), progress=False).output
    assert changed.path != first.path
    assert not np.array_equal(load_split(changed.path, "test")[0], load_split(first.path, "test")[0])
    np.testing.assert_array_equal(load_split(changed.path, "test")[2], load_split(first.path, "test")[2])
    _fake_segmentation(tmp_path / "a", n=5)  # a new upstream output: a new folder for the same parameters
    assert run(tmp_path / "a", _params(), progress=False).output.path not in (first.path, changed.path)


def test_an_edited_literature_value_makes_new_maps(tmp_path, monkeypatch):
    _fake_segmentation(tmp_path)
    first = run(tmp_path, _params(), progress=False).output
    assert first.params["literature_values"]["concentrations"]["GM"]["tCr"]["range"] == [7.0, 8.0]
    edited = map_synthesis.literature_values()
    edited["concentrations"]["GM"]["tCr"] = {"mean": 6.7, "range": [6.4, 7.0], "source": "a reader's edit"}
    monkeypatch.setattr(map_synthesis, "literature_values", lambda: edited)
    second = run(tmp_path, _params(), progress=False).output
    assert second.path != first.path  # not the old maps
    (_, _, first_hr, meta), (_, _, second_hr, _) = (load_split(o.path, "test") for o in (first, second))
    tcr = np.flatnonzero(meta["kind"].to_numpy() == "tCr")
    assert not np.array_equal(first_hr[tcr], second_hr[tcr])  # the tCr maps follow the edited values
    others = np.flatnonzero(meta["kind"].to_numpy() == "NAA")
    np.testing.assert_array_equal(first_hr[others], second_hr[others])


def test_split_subjects_counts():
    subjects = pd.DataFrame({"subject": [f"s{i}" for i in range(20)]})
    splits = split_subjects(subjects, 5, 0.3, np.random.default_rng(0))
    assert [len(splits[s]) for s in SPLITS] == [11, 4, 5]  # round(0.3 * 15) = 4 validation subjects
    assert sorted(sum(splits.values(), [])) == sorted(subjects["subject"])
    assert split_subjects(pd.DataFrame({"subject": ["a", "b", "c"]}), 1, 0.1, np.random.default_rng(0))["val"]
    with pytest.raises(ValueError, match="leaves no training subject"):
        split_subjects(subjects, 20, 0.3, np.random.default_rng(0))


def test_tumour_free_subjects_are_skipped_and_listed(tmp_path):
    _fake_segmentation(tmp_path, n=6, tumour_free=(0,))
    result = run(tmp_path, _params(), progress=False)
    assert json.loads((result.output.path / "manifest.json").read_text())["skipped_subjects"] == ["s00"]
    assert result.skipped == ["s00"]
    assert all("s00" not in set(load_split(result.output.path, split)[3]["subject"]) for split in SPLITS)
    _fake_segmentation(tmp_path / "none", n=3, tumour_free=(0, 1, 2))
    with pytest.raises(ValueError, match="no subject of .* has a slice with tumour"):
        run(tmp_path / "none", _params(n_test_subjects=1), progress=False)


def test_figure_maps_are_normalised(tmp_path):
    anatomy = _fake_segmentation(tmp_path)
    values = _params().model_dump()
    maps, flair = figure_maps(anatomy, values, "s01", 20)
    assert set(maps) == set(KINDS) == {"tCho", "tCr", "NAA", "tCho/NAA", "tCho/tCr"}
    assert all(m.max() == pytest.approx(1.0) and m.min() >= 0 for m in maps.values())
    assert flair.max() == pytest.approx(1.0)
    again, _ = figure_maps(anatomy, values, "s01", 20)
    assert all(np.array_equal(maps[kind], again[kind]) for kind in KINDS)  # the same seed, the same maps
    with pytest.raises(ValueError, match="no subject 'nobody'"):
        figure_maps(anatomy, values, "nobody", 20)


def test_figure_maps_are_the_datasets_maps(tmp_path):
    anatomy = _fake_segmentation(tmp_path)
    result = run(tmp_path, _params(), progress=False)
    _, _, hr, meta = load_split(result.output.path, "train")
    row = meta.iloc[0]
    maps, _ = figure_maps(anatomy, _params().model_dump(), row["subject"], int(row["slice"]))
    np.testing.assert_allclose(maps[row["kind"]], hr[0], atol=1e-6)


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="lowres_method"):
        _params(lowres_method="cubic")
    with pytest.raises(ValueError, match="lowres_size"):
        _params(lowres_size=16)  # map_size must be 4 x lowres_size
    with pytest.raises(FileNotFoundError, match="segmentation"):
        run(tmp_path, _params(), progress=False)
    anatomy = _fake_segmentation(tmp_path)
    with pytest.raises(ValueError, match="n_test_subjects=6 leaves no training subject"):
        run(tmp_path, _params(n_test_subjects=6), progress=False)
    np.savez(anatomy.path / "s03.npz", flair=np.zeros((2, 2, 2)))  # changed after the stage completed
    with pytest.raises(FileNotFoundError, match="segmentation' output .* changed on disk: run that stage again"):
        run(tmp_path, _params(), progress=False)
    anatomy.mark_complete()  # as if the stage had written the broken subject itself
    with pytest.raises(ValueError, match=r"s03\.npz: subject arrays lack"):
        run(tmp_path, _params(), progress=False)
    with pytest.raises(ValueError, match="unknown split"):
        load_split(tmp_path, "holdout")
    with pytest.raises(FileNotFoundError, match="train_lr.npy"):
        load_split(tmp_path, "train")


def test_calibration_scores_the_runs_setting_first_beside_the_paper(tmp_path):
    _fake_segmentation(tmp_path)
    result = run(tmp_path, _params(calibration_subjects=2), progress=False)
    table = result.calibration
    assert list(table["setting"][:2]) == ["paper", "paper"]
    ours = table[table["setting"] != "paper"]
    assert ours["setting"].iloc[0] == "one slice, hard, 2 mm anatomy, kspace, fov 240"  # this run's (ci) setting
    assert "10 mm slab, partial volume, 2 mm anatomy, kspace, fov 220" in set(ours["setting"])
    assert (ours["n_maps"] == 2 * 5).all() and ours[["psnr", "ssim", "lpips"]].notna().all().all()
    spline = ours[(ours["setting"] == ours["setting"].iloc[0]) & (ours["method"] == "spline")]["psnr"].iloc[0]
    assert result.glue_values["calibration_spline_psnr"] == spline
    assert run(tmp_path, _params(calibration_subjects=0), progress=False).calibration.empty
