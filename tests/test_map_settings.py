"""mrsisr.scoring.map_settings and scripts/record_setting_run.py: this run's maps beside a recorded run on the
other map setting (notebook 04)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import evaluation_summary

from mrsisr.scoring.map_settings import (
    SETTING_FIELDS,
    describe_recipe_differences,
    describe_setting,
    load_setting_record,
    map_setting,
    method_scores,
    recipe_differences,
    recipe_note,
    setting_comparison,
)
from mrsisr.study import cache
from mrsisr.study.profiles import load_profile, stage_parameters

PHYSICAL = {"slice_thickness_mm": 10.0, "tissue_model": "partial_volume", "fov_mm": 220.0}


def _summary(offsets: dict[str, float], seed: int = 0) -> pd.DataFrame:
    """An evaluation summary (table2.csv) of 3 subjects x 2 kinds per method, PSNR about 25 dB + offset."""
    return evaluation_summary(offsets, n_subjects=3, seed=seed)


def test_the_demo_setting_and_the_physical_one_read_as_words():
    demo = map_setting(load_profile("demo"))
    assert set(demo) == set(SETTING_FIELDS)
    assert describe_setting(demo) == "one 2 mm slice, hard tissue classes, 240 mm field of view, k-space truncation"
    physical = map_setting(load_profile("demo", PHYSICAL | {"map_noise": 0.02}))
    assert describe_setting(physical) == (
        "a 10 mm slab of 2 mm anatomy, partial-volume tissue fractions, 220 mm field of view, k-space truncation, "
        "noise SD 0.02"
    )
    with pytest.raises(KeyError, match="fov_mm"):
        map_setting({name: 0 for name in SETTING_FIELDS if name != "fov_mm"})


def test_scores_and_the_comparison_table_come_from_the_evaluation_summaries():
    ours, other = (
        _summary({"model": 3.0, "spline": 0.0, "nearest": -2.0}),
        _summary({"model": 6.0, "spline": 4.0, "nearest": 1.0}, seed=1),
    )
    scores = method_scores(ours)
    assert set(scores) == {"model", "spline", "nearest"} and scores["model"]["n_maps"] == 6
    assert scores["spline"]["psnr"] == ours.set_index("method").loc["spline", "psnr_mean"]
    with pytest.raises(KeyError, match="nearest"):
        method_scores(ours[ours["method"] != "nearest"])
    demo = map_setting(load_profile("demo"))
    table = setting_comparison({"this run": (demo, scores), "recorded run": (demo | PHYSICAL, method_scores(other))})
    assert list(table.index.get_level_values("Run").unique()) == ["this run", "recorded run"]
    gain = scores["model"]["psnr"] - scores["spline"]["psnr"]
    assert table.loc[("this run", "network"), "Network minus spline, PSNR (dB)"] == f"{gain:.2f}"
    assert table.loc[("recorded run", "network"), "PSNR (dB)"] == f"{method_scores(other)['model']['psnr']:.2f}"
    assert table["Network minus spline, PSNR (dB)"].isna().sum() == 4  # shown on the network's rows only
    assert "recorded run: a 10 mm slab of 2 mm anatomy" in table.attrs["caption"]


def test_a_missing_record_is_none_and_a_broken_one_is_refused_naming_the_file(tmp_path):
    assert load_setting_record(tmp_path / "absent.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        load_setting_record(tmp_path / "bad.json")
    (tmp_path / "partial.json").write_text(json.dumps({"setting": {}}))
    with pytest.raises(ValueError, match="partial.json: not a setting-run record, it lacks scores"):
        load_setting_record(tmp_path / "partial.json")


def test_the_shipped_record_is_a_run_on_another_setting_than_the_demo_profile():
    record = load_setting_record()
    if record is None:
        pytest.skip("no mrsisr/data/setting_run.json shipped yet (scripts/record_setting_run.py writes it)")
    assert record["setting"] != map_setting(load_profile("demo"))
    assert record["command"].startswith("python scripts/record_setting_run.py")
    assert {"model", "spline", "nearest"} == set(record["scores"]) and record["training"]["epochs_run"] >= 1


def test_a_recorded_run_with_another_recipe_is_named_as_such():
    recorded = load_profile("demo", PHYSICAL | {"time_budget_min": 0.0})
    training = stage_parameters("training", load_profile("demo")).model_dump() | {"cache_version": 6}
    assert recipe_differences(recorded, training) == {}
    assert describe_recipe_differences({}).startswith("The separate run trained with this run's recipe")
    changed = recipe_differences(recorded | {"batch_size": 24, "learning_rate": 2e-3}, training)
    assert changed == {"batch_size": (24, training["batch_size"]), "learning_rate": (2e-3, training["learning_rate"])}
    sentence = describe_recipe_differences(changed)
    assert "another recipe" in sentence and f"batch_size: 24 there, {training['batch_size']} here" in sentence


def test_the_recipe_note_reads_the_runs_current_training(tmp_path):
    training = stage_parameters("training", load_profile("demo")).model_dump()
    output = cache.stage_output(tmp_path, "training", training | {"cache_version": 6})
    output.mark_complete()
    cache.publish(tmp_path, output)
    record = {"parameters": load_profile("demo", PHYSICAL | {"time_budget_min": 0.0})}
    assert recipe_note(record, tmp_path) == describe_recipe_differences({})
    record["parameters"] = record["parameters"] | {"guided": False}
    assert "guided: False there, True here" in recipe_note(record, tmp_path)
