"""`mrsisr` command line: --version, and the hostile single-file cases of `upscale` (each one sentence, exit 1)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import keras
import nibabel as nib
import numpy as np
import pytest

from mrsisr.cli import main
from mrsisr.network.model import build_model
from mrsisr.upscale import upscale_file


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    build_model(width=8, mid_width=4, n_pairs=1, guided=False).save(path)
    return path


def write_map(path: Path, affine: np.ndarray | None = None, scale: float = 3000.0, shape=(16, 16, 2)) -> Path:
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    data = np.stack([scale * (1.2 + np.cos(2 * x + k) * y) for k in range(shape[2])], axis=2).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([6.875, 6.875, 10.0, 1.0]) if affine is None else affine), path)
    return path


def run_upscale(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["upscale", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("mrsisr 0.")


@pytest.mark.parametrize("role", ["input", "guide"])
def test_output_equal_to_a_source_is_refused_even_with_force(tmp_path, tiny, capsys, role):
    source = write_map(tmp_path / "NAA.nii.gz")
    before = source.read_bytes()
    link = tmp_path / "same.nii.gz"
    os.link(source, link)  # the same file under another name
    extra = ["--guide", str(source)] if role == "guide" else []
    for output in (source, link, tmp_path / "." / "NAA.nii.gz"):
        inp = write_map(tmp_path / "tCr.nii.gz") if role == "guide" else source
        status, _, err = run_upscale(capsys, inp, "-o", output, "--model", tiny, "--force", *extra)
        assert status == 1 and f"is the {role}" in err and "even with --force" in err
    assert source.read_bytes() == before


def test_concurrent_writers_exactly_one_wins(tmp_path, tiny):
    write_map(tmp_path / "NAA.nii.gz")
    out = tmp_path / "NAA_x4.nii.gz"
    script = (
        "import sys; from mrsisr.cli import main; "
        f"sys.exit(main(['upscale', {str(tmp_path / 'NAA.nii.gz')!r}, '-o', {str(out)!r}, '--model', {str(tiny)!r}]))"
    )
    runs = [subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    assert sorted(code for code, _ in results) == [0, 1]
    assert any("exists" in err for code, err in results if code == 1)
    assert nib.load(out).shape == (64, 64, 2)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_stale_temporaries_of_killed_runs_are_removed(tmp_path, tiny, capsys):
    write_map(tmp_path / "NAA.nii.gz")
    stale = [tmp_path / ".NAA_x4.nii.gz.tmp-abc123.nii.gz", tmp_path / ".NAA_x4.nii.gz.tmp-999999999-ab.nii.gz"]
    live = tmp_path / f".NAA_x4.nii.gz.tmp-{os.getpid()}-cd.nii.gz"  # a live writer's: kept
    for path in (*stale, live):
        path.write_bytes(b"half written")
    status, out, _ = run_upscale(capsys, tmp_path / "NAA.nii.gz", "-o", tmp_path / "NAA_x4.nii.gz", "--model", tiny)
    assert status == 0 and "removed 2 stale temporary file(s) of NAA_x4.nii.gz" in out
    assert not any(p.exists() for p in stale) and live.exists()


def test_non_axial_maps_refused_unless_allowed(tmp_path, tiny, capsys):
    sagittal = np.array([[0, 0, 10.0, 0], [6.875, 0, 0, 0], [0, 6.875, 0, 0], [0, 0, 0, 1]])  # slices along x
    write_map(tmp_path / "NAA.nii.gz", sagittal)
    out = tmp_path / "NAA_x4.nii.gz"
    status, _, err = run_upscale(capsys, tmp_path / "NAA.nii.gz", "-o", out, "--model", tiny)
    assert status == 1 and "slices are not axial (voxel axes ASR" in err and "90 degrees" in err
    assert "--allow-oblique" in err and not out.exists()
    tilt = np.radians(50)
    oblique = np.diag([6.875, 6.875, 10.0, 1.0])
    oblique[1:3, 1:3] = [[6.875 * np.cos(tilt), -10 * np.sin(tilt)], [6.875 * np.sin(tilt), 10 * np.cos(tilt)]]
    write_map(tmp_path / "tCr.nii.gz", oblique)
    status, _, err = run_upscale(capsys, tmp_path / "tCr.nii.gz", "-o", out, "--model", tiny)
    assert status == 1 and "50 degrees" in err
    status, printed, _ = run_upscale(capsys, tmp_path / "NAA.nii.gz", "-o", out, "--model", tiny, "--allow-oblique")
    assert status == 0 and "warning" in printed and out.exists()


def test_no_spatial_affine_and_float32_overflow_refused(tmp_path, tiny, capsys):
    image = nib.Nifti1Image(np.ones((16, 16, 2), dtype=np.float32), None)
    image.header["qform_code"] = image.header["sform_code"] = 0
    image.header["pixdim"][1:4] = 0
    nib.save(image, tmp_path / "NAA.nii")
    out = tmp_path / "out.nii"
    status, _, err = run_upscale(capsys, tmp_path / "NAA.nii", "-o", out, "--model", tiny)
    assert status == 1 and "NAA.nii: has no spatial orientation (NIfTI qform and sform codes are both 0)" in err
    write_map(tmp_path / "tCho.nii", scale=1.5e38)
    status, _, err = run_upscale(capsys, tmp_path / "tCho.nii", "-o", out, "--model", tiny)
    assert status == 1 and "beyond float32's range" in err and "tCho.nii" in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_write_failures_are_one_sentence(tmp_path, tiny, capsys, monkeypatch):
    write_map(tmp_path / "NAA.nii.gz")
    (tmp_path / "folder.nii.gz").mkdir()
    status, _, err = run_upscale(capsys, tmp_path / "NAA.nii.gz", "-o", tmp_path / "folder.nii.gz", "--model", tiny)
    assert status == 1 and f"cannot write {tmp_path / 'folder.nii.gz'}: it is a directory" in err
    (tmp_path / "afile").write_text("")
    status, _, err = run_upscale(capsys, tmp_path / "NAA.nii.gz", "-o", tmp_path / "afile" / "x.nii", "--model", tiny)
    assert status == 1 and "cannot write" in err and "afile is not a folder" in err

    def disk_full(image, path):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(nib, "save", disk_full)
    out = tmp_path / "full.nii.gz"
    status, _, err = run_upscale(capsys, tmp_path / "NAA.nii.gz", "-o", out, "--model", tiny)
    assert (
        status == 1
        and err.strip().splitlines()[-1] == f"mrsisr upscale: error: cannot write {out}: no space left on the device"
    )
    assert "Traceback" not in err and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_permission_denied_is_one_sentence(tmp_path, tiny, capsys, monkeypatch):
    write_map(tmp_path / "NAA.nii.gz")

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "link", refuse)
    monkeypatch.setattr(os, "open", refuse)  # a filesystem without hard links that also refuses to create
    out = tmp_path / "NAA_x4.nii.gz"
    status, _, err = run_upscale(capsys, tmp_path / "NAA.nii.gz", "-o", out, "--model", tiny)
    assert status == 1 and f"cannot write {out}: Permission denied" in err and not out.exists()


def test_foreign_keras_model_is_named(tmp_path, capsys):
    lr = keras.Input((32, 32, 1), name="lr")
    x2 = keras.Model(lr, keras.layers.UpSampling2D(2)(lr))
    x2.save(tmp_path / "x2.keras")
    write_map(tmp_path / "NAA.nii.gz")
    status, _, err = run_upscale(
        capsys, tmp_path / "NAA.nii.gz", "-o", tmp_path / "o.nii.gz", "--model", tmp_path / "x2.keras"
    )
    assert status == 1 and f"model file {tmp_path / 'x2.keras'} is not an mrsisr x4 network" in err


def test_library_call_refuses_existing_output_and_sidecar(tmp_path, tiny):
    write_map(tmp_path / "NAA.nii.gz")
    (tmp_path / "out.json").write_text("{}")
    with pytest.raises(FileExistsError, match="out.json exists: pass --force"):
        upscale_file(tmp_path / "NAA.nii.gz", tmp_path / "out.nii.gz", model_path=tiny)
    assert not (tmp_path / "out.nii.gz").exists()
