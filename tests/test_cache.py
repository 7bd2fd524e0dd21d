"""Tests of mrsisr.study.cache: stage folders keyed by parameters, completion and publishing."""

import json
import os

import pytest

from mrsisr.study import cache
from mrsisr.study.cache import COMPLETE_MARKER, current, publish, stage_key, stage_output


def test_key_is_stable_and_depends_on_parameters_and_upstream():
    key = stage_key({"a": 1, "b": [1, 2]}, {"synthesis": "up1"})
    assert key == stage_key({"b": [1, 2], "a": 1}, {"synthesis": "up1"})
    assert len(key) == 16
    assert key != stage_key({"a": 2, "b": [1, 2]}, {"synthesis": "up1"})
    assert key != stage_key({"a": 1, "b": [1, 2]}, {"synthesis": "up2"})


def test_stage_output_is_a_keyed_folder_complete_only_when_marked(tmp_path):
    upstream = stage_output(tmp_path, "synthesis", {"n": 1})
    upstream.mark_complete()
    output = stage_output(tmp_path, "training", {"n": 3, "methods": ("a", "b")}, {"synthesis": upstream})
    assert output.path == tmp_path / "training" / output.key
    assert output.path.is_dir()
    assert not output.complete
    output.mark_complete()
    assert output.complete
    record = json.loads((output.path / "params.json").read_text())
    assert record["params"] == output.params == {"n": 3, "methods": ["a", "b"]}  # as read back, tuples as lists
    assert record["upstream"] == {"synthesis": upstream.key}


def test_a_file_changed_on_disk_makes_the_output_incomplete(tmp_path, capsys):
    output = stage_output(tmp_path, "evaluation", {"n": 1})
    (output.path / "real").mkdir()
    (output.path / "real" / "metrics.csv").write_text("a\n1\n")
    output.mark_complete()
    publish(tmp_path, output)
    (output.path / "real" / "metrics.csv").write_text("a\n2\n")
    with pytest.raises(FileNotFoundError, match="changed on disk: run that stage again"):
        current(tmp_path, "evaluation")
    assert "real/metrics.csv changed on disk since the stage wrote it; rebuilding" in capsys.readouterr().out
    assert not output.complete


def test_publish_refuses_an_incomplete_output(tmp_path):
    output = stage_output(tmp_path, "model", {"epochs": 1})
    with pytest.raises(RuntimeError, match="not complete"):
        publish(tmp_path, output)


def test_publish_exports_files_and_current_finds_the_output(tmp_path):
    output = stage_output(tmp_path, "model", {"epochs": 1})
    (output.path / "history.csv").write_text("epoch,loss\n0,1.0\n")
    output.mark_complete()
    publish(tmp_path, output, exports=["history.csv"])
    assert (tmp_path / "model" / "history.csv").read_text() == "epoch,loss\n0,1.0\n"
    found = current(tmp_path, "model")
    assert (found.key, found.path, found.params) == (output.key, output.path, {"epochs": 1})


def test_current_names_the_stage_to_run_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no output of stage 'dataset'.*--stage dataset"):
        current(tmp_path, "dataset")


def test_current_refuses_an_output_that_lost_its_marker(tmp_path):
    output = stage_output(tmp_path, "anatomy", {"n": 2})
    output.mark_complete()
    publish(tmp_path, output)
    (output.path / COMPLETE_MARKER).unlink()
    with pytest.raises(FileNotFoundError, match="incomplete"):
        current(tmp_path, "anatomy")


def test_a_changed_parameter_gives_a_new_folder(tmp_path):
    first = stage_output(tmp_path, "dataset", {"seed": 0})
    second = stage_output(tmp_path, "dataset", {"seed": 1})
    assert first.path != second.path


def test_a_damaged_record_is_named(tmp_path):
    output = stage_output(tmp_path, "synthesis", {"n": 1})
    output.mark_complete()
    publish(tmp_path, output)
    (tmp_path / "synthesis" / "current.json").write_text("{\n")
    with pytest.raises(ValueError, match="synthesis/current.json: not a readable JSON record"):
        current(tmp_path, "synthesis")


def test_a_verified_settled_folder_is_not_hashed_again_until_a_file_changes(tmp_path, monkeypatch):
    output = stage_output(tmp_path, "synthesis", {"n": 1})
    (output.path / "maps.npz").write_bytes(b"x" * 1000)
    output.mark_complete()
    old = 1_000_000_000_000_000_000  # 2001: long settled
    for path in output.path.iterdir():
        os.utime(path, ns=(old, old))
    hashed = []
    original = cache.file_sha256
    monkeypatch.setattr(cache, "file_sha256", lambda path: hashed.append(path) or original(path))
    assert output.complete and output.complete and output.complete
    assert len(hashed) == 2  # maps.npz and params.json, once
    (output.path / "maps.npz").write_bytes(b"y" * 1001)
    assert not output.complete


def test_a_freshly_written_folder_is_hashed_on_every_check(tmp_path, monkeypatch):
    output = stage_output(tmp_path, "synthesis", {"n": 1})
    (output.path / "maps.npz").write_bytes(b"x" * 1000)
    output.mark_complete()
    hashed = []
    original = cache.file_sha256
    monkeypatch.setattr(cache, "file_sha256", lambda path: hashed.append(path) or original(path))
    assert output.complete and output.complete
    assert len(hashed) == 4  # files younger than SETTLE_NS: a same-size rewrite in one clock tick stays visible
