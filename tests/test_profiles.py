"""Tests of mrsisr.study.profiles: the one parameter file, overrides and stage selection."""

import pytest

from mrsisr.study.profiles import STAGES, load_profile, parse_overrides, profile_names, select_stages


def test_profiles_are_ci_demo_paper():
    assert profile_names() == ["ci", "demo", "paper"]


def test_profile_overrides_defaults_and_keeps_the_rest():
    defaults_demo = load_profile("demo")
    ci = load_profile("ci")
    assert set(ci) == set(defaults_demo)
    assert ci["n_subjects"] < defaults_demo["n_subjects"]
    assert ci["map_size"] == defaults_demo["map_size"] == 128
    assert ci["lr_size"] == 32


def test_set_overrides_apply_last():
    params = load_profile("ci", {"epochs": 7, "lowres_method": "hamming"})
    assert params["epochs"] == 7
    assert params["lowres_method"] == "hamming"


def test_unknown_profile_is_refused_with_the_valid_list():
    with pytest.raises(ValueError, match=r"unknown profile 'fast'.*ci, demo, paper"):
        load_profile("fast")


def test_unknown_parameter_is_refused_with_the_valid_list():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) epoch in --set; valid parameters: .*epochs"):
        load_profile("ci", {"epoch": 3})


@pytest.mark.parametrize(
    ("item", "key", "value"),
    [
        ("epochs=3", "epochs", 3),
        ("learning_rate=1e-3", "learning_rate", 1e-3),
        ("guided=false", "guided", False),
        ("methods=[nearest, spline]", "methods", ["nearest", "spline"]),
        ("brats_root=/data/BraTS", "brats_root", "/data/BraTS"),
        ("mrsi_dir=", "mrsi_dir", ""),
    ],
)
def test_parse_overrides_reads_yaml_values(item, key, value):
    assert parse_overrides([item]) == {key: value}


@pytest.mark.parametrize("item", ["epochs", "=3"])
def test_parse_overrides_refuses_items_without_key_and_value(item):
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides([item])


def test_select_stages_by_name_or_number_in_study_order():
    assert [s.name for s in select_stages(["evaluation", "01"])] == ["segmentation", "evaluation"]
    assert [s.name for s in select_stages(["02_synthesis"])] == ["synthesis"]
    assert select_stages([]) == list(STAGES)


def test_unknown_stage_is_refused_with_the_valid_list():
    with pytest.raises(ValueError, match=r"unknown stage 'train'; valid stages: segmentation, synthesis, training"):
        select_stages(["train"])
