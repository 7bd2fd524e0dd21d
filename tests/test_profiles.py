"""Tests of mrsisr.study.profiles (parameters declared once, validated) and the stage registry."""

import pytest

from mrsisr.stages import STAGES, downstream_of, get_stage, select_stages
from mrsisr.study.profiles import (
    declared_parameters,
    defaults,
    load_profile,
    parse_overrides,
    profile_names,
    stage_parameter_names,
    stage_parameters,
)


def test_profiles_are_ci_demo_paper():
    assert profile_names() == ["ci", "demo", "paper"]


def test_every_parameter_has_a_type_a_meaning_and_a_valid_default():
    for name, parameter in declared_parameters().items():
        assert parameter.help and parameter.type in ("int", "float", "bool", "str", "list"), name
        assert parameter.stages and set(parameter.stages) <= {s.name for s in STAGES}, name
    assert load_profile("demo") is not None  # every default and every profile value passes validation
    for profile in profile_names():
        load_profile(profile)


def test_each_stage_reads_its_own_section_and_the_shared_parameters():
    assert stage_parameter_names("segmentation")[0] == "seed"
    assert "epochs" in stage_parameter_names("training") and "epochs" not in stage_parameter_names("evaluation")
    assert "methods" in stage_parameter_names("evaluation") and "methods" in stage_parameter_names("validation_7t")
    names = [name for stage in STAGES for name in stage_parameter_names(stage.name)]
    assert set(names) == set(declared_parameters())


def test_profile_overrides_defaults_and_keeps_the_rest():
    ci, base = load_profile("ci"), defaults()
    assert ci["n_subjects"] == 6 and ci["epochs"] == 2
    assert ci["map_size"] == base["map_size"] == 128
    assert set(ci) == set(base)


def test_set_overrides_apply_last():
    params = load_profile("demo", {"epochs": 3, "learning_rate": "1e-3"})
    assert params["epochs"] == 3 and params["learning_rate"] == 1e-3
    assert isinstance(load_profile("demo", {"learning_rate": 1})["learning_rate"], float)


def test_unknown_profile_is_refused_with_the_valid_list():
    with pytest.raises(ValueError, match="unknown profile 'fast'; valid profiles: ci, demo, paper"):
        load_profile("fast")


def test_unknown_parameter_is_refused_with_the_valid_list():
    with pytest.raises(ValueError, match="unknown parameter\\(s\\) epoch in --set; valid parameters: .*epochs"):
        load_profile("demo", {"epoch": 3})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": -1}, "parameter epochs=-1: must be greater than or equal to 1 (an integer)"),
        ({"epochs": "abc"}, "parameter epochs='abc': must be a valid integer (an integer)"),
        ({"seed": 1.5}, "parameter seed=1.5: must be a valid integer"),
        ({"lowres_size": 0}, "parameter lowres_size=0: must be greater than or equal to 4"),
        ({"lowres_method": "foo"}, "parameter lowres_method='foo': must be 'kspace', 'hamming' or 'block'"),
        ({"guided": "yes"}, "parameter guided='yes': must be a valid boolean"),
        ({"methods": ["nearest", "magic"]}, "parameter methods=('nearest', 'magic'): must be 'nearest'"),
        ({"slices_min": 9, "slices_max": 3}, "slices_min=9 and slices_max=3: slices_min must be <= slices_max"),
        ({"map_size": 96}, "map_size=96 and lowres_size=32: map_size must be == 4 x lowres_size"),
        ({"warmup_epochs": 3.0, "epochs": 2}, "warmup_epochs must be < epochs"),
    ],
)
def test_wrong_values_are_one_sentence_naming_the_parameter(overrides, message):
    with pytest.raises(ValueError) as caught:
        load_profile("ci", overrides)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_stage_parameters_are_typed_and_frozen():
    params = stage_parameters("training", load_profile("ci"))
    assert params.epochs == 2 and params.learning_rate_schedule == "constant"
    with pytest.raises(Exception, match="frozen"):
        params.epochs = 3
    assert set(params.model_dump()) == set(stage_parameter_names("training"))


@pytest.mark.parametrize(
    ("item", "key", "value"),
    [
        ("epochs=3", "epochs", 3),
        ("learning_rate=1e-3", "learning_rate", "1e-3"),
        ("guided=false", "guided", False),
        ("methods=[nearest, spline]", "methods", ["nearest", "spline"]),
        ("brats_root=", "brats_root", ""),
    ],
)
def test_parse_overrides_reads_plain_yaml_values(item, key, value):
    assert parse_overrides([item]) == {key: value}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("epochs", "--set expects name=value, got 'epochs'"),
        ("=3", "--set expects name=value"),
        ("epochs=[1", "the value is not a plain value"),
        ("x=!!python/object/apply:os.system [ls]", "the value is not a plain value"),
        ("x={a: 1}", "the value must be a number, text, true/false or a list of those"),
    ],
)
def test_parse_overrides_refuses_what_is_not_a_plain_value(item, message):
    with pytest.raises(ValueError, match=message.replace("[", "\\[")):
        parse_overrides([item])


def test_select_stages_by_name_or_number_in_study_order():
    assert [s.name for s in select_stages(["evaluation", "01"])] == ["segmentation", "evaluation"]
    assert [s.name for s in select_stages(["02_synthesis"])] == ["synthesis"]
    assert select_stages([]) == list(STAGES)


def test_unknown_stage_is_refused_with_the_valid_list():
    with pytest.raises(ValueError, match="unknown stage 'train'; valid stages: segmentation, synthesis, training"):
        select_stages(["train"])
    with pytest.raises(ValueError, match="unknown stage 'model'"):
        get_stage("model")


def test_stage_graph_runs_forward_and_names_every_reader():
    names = [stage.name for stage in STAGES]
    for position, stage in enumerate(STAGES):
        assert set(stage.upstream) <= set(names[:position]), stage
        assert stage.notebook == f"{stage.number:02d}_{stage.name}.ipynb"
        assert stage.module().STAGE is stage
    assert [s.name for s in downstream_of("training")] == ["evaluation", "validation_7t", "beyond"]
    assert [s.name for s in downstream_of("evaluation")] == ["beyond"]
