"""Tests of mrsisr.study.atomic: a write either completes or leaves nothing behind."""

import json

import numpy as np
import pytest

from mrsisr.study.atomic import atomic_path, save_json, save_npy, save_npz, save_text


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def test_atomic_path_renames_on_success(tmp_path):
    dest = tmp_path / "sub" / "out.txt"
    with atomic_path(dest) as tmp:
        assert tmp.parent == dest.parent
        tmp.write_text("done")
        assert not dest.exists()
    assert dest.read_text() == "done"
    assert _leftovers(dest.parent) == []


def test_atomic_path_keeps_the_old_file_and_no_temp_on_failure(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert dest.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_savers_round_trip(tmp_path):
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(np.load(save_npy(tmp_path / "a.npy", array)), array)
    with np.load(save_npz(tmp_path / "b.npz", x=array, y=array[0])) as data:
        np.testing.assert_array_equal(data["y"], array[0])
    assert save_text(tmp_path / "c.txt", "é").read_text(encoding="utf-8") == "é"
    obj = {"n": np.int64(3), "v": np.array([1.5]), "p": tmp_path}
    assert json.loads(save_json(tmp_path / "d.json", obj).read_text()) == {"n": 3, "v": [1.5], "p": str(tmp_path)}
    assert _leftovers(tmp_path) == []


def test_save_json_refuses_unknown_types_and_leaves_nothing(tmp_path):
    with pytest.raises(TypeError, match="cannot serialise object"):
        save_json(tmp_path / "e.json", {"x": object()})
    assert list(tmp_path.iterdir()) == []


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    from mrsisr.study.atomic import save_text

    umask = os.umask(0o022)
    try:
        path = save_text(tmp_path / "result.txt", "x")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644
