"""Tests of mrsisr.study.clean and ``mrsisr clean``: unused cache folders go, what the run uses stays."""

import pytest

from mrsisr.cli import main
from mrsisr.study.atomic import save_json
from mrsisr.study.cache import publish, stage_output
from mrsisr.study.clean import clean_run


def _complete(run_dir, stage, params, **upstream):
    output = stage_output(run_dir, stage, params, upstream)
    (output.path / "data.bin").write_bytes(b"x" * 1000)
    output.mark_complete()
    return output


@pytest.fixture
def run_dir(tmp_path):
    """A run whose synthesis and training ran twice each, an evaluation on the old training, and a sub-cache."""
    run = tmp_path / "runs" / "demo"
    old_maps = _complete(run, "synthesis", {"n": 1})
    maps = _complete(run, "synthesis", {"n": 2})
    publish(run, maps)
    old_model = _complete(run, "training", {"epochs": 1}, synthesis=maps)
    model = _complete(run, "training", {"epochs": 2}, synthesis=maps)
    publish(run, model)
    evaluation = _complete(run, "evaluation", {"k": 0}, training=old_model)  # stale, but the run shows it
    publish(run, evaluation)
    superseded = _complete(run, "evaluation", {"k": 1}, training=old_model)
    on_current = _complete(run, "beyond/variants", {"variant": "main"}, training=model)
    on_old_maps = _complete(run, "beyond/variants", {"variant": "main"}, synthesis=old_maps)
    killed = stage_output(run, "training", {"epochs": 3}, {"synthesis": maps})  # a killed training: checkpoints
    (killed.path / "checkpoint.keras").write_bytes(b"y")
    shown = _complete(run, "validation_7t", {"k": 0})  # shown by a page, not the stage's current output
    publish(run, _complete(run, "validation_7t", {"k": 1}))
    save_json(run / "run.json", {"stages": {"validation_7t": {"key": shown.key}}})
    return run, {
        "used": [maps, model, old_model, evaluation, on_current, killed, shown],
        "unused": [old_maps, superseded, on_old_maps],
    }


def test_clean_removes_only_what_the_run_does_not_use(run_dir):
    run, outputs = run_dir
    sizes = sum(path.stat().st_size for o in outputs["unused"] for path in o.path.iterdir())
    report = clean_run(run)
    assert sorted(folder.path for folder in report.removed) == sorted(output.path for output in outputs["unused"])
    assert report.removed_bytes == sizes > 3000
    for output in outputs["unused"]:
        assert not output.path.exists()
    for output in outputs["used"]:
        assert output.path.is_dir(), output.path


def test_a_dry_run_removes_nothing_and_a_second_clean_finds_nothing(run_dir):
    run, outputs = run_dir
    planned = clean_run(run, dry_run=True)
    assert len(planned.removed) == 3
    assert all(output.path.is_dir() for output in outputs["unused"])
    clean_run(run)
    assert clean_run(run).removed == []


def test_the_command_lists_sizes_and_refuses_a_missing_run(run_dir, capsys):
    run, outputs = run_dir
    runs_root = str(run.parent)
    assert main(["clean", "--profile", "demo", "--runs-root", runs_root, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    for output in outputs["unused"]:
        assert f"would remove {output.path} (" in printed
    assert "would remove 3 unused cache folder(s)" in printed
    assert "(1 incomplete, kept so that a killed run resumes)" in printed
    assert main(["clean", "--profile", "paper", "--runs-root", runs_root]) == 1
    assert "no such run folder" in capsys.readouterr().err


def test_a_damaged_pointer_is_named_and_nothing_is_removed(run_dir, capsys):
    run, outputs = run_dir
    (run / "training" / "current.json").write_text("{not json")
    assert main(["clean", "--profile", "demo", "--runs-root", str(run.parent)]) == 1
    assert "current.json: not a readable JSON record" in capsys.readouterr().err
    assert all(output.path.is_dir() for output in outputs["unused"])
