"""`mrsisr upscale DIR -o OUTDIR`: FSL-MRS and Vienna folders upscaled into the same layout with sidecars."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_mrsi_io import write_minc2  # noqa: E402

from mrsisr.cli import main  # noqa: E402
from mrsisr.mrsi.folders import find_maps  # noqa: E402
from mrsisr.network.model import build_model  # noqa: E402

AFFINE = np.diag([-6.875, -6.875, 10.0, 1.0])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    build_model(width=8, mid_width=4, n_pairs=1, guided=False).save(path)
    return path


def fit_map(seed: int, shape=(16, 16, 2), scale: float = 10.0) -> np.ndarray:
    """A smooth positive map, 0 outside an ellipse (as fsl_mrsi writes outside its mask)."""
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    inside = x**2 / 0.8 + y**2 / 0.7 < 1
    rng = np.random.default_rng(seed)
    maps = [np.where(inside, scale * (1 + 0.3 * np.cos(3 * x + k) + 0.05 * rng.random(x.shape)), 0) for k in range(2)]
    return np.stack(maps, axis=2).astype(np.float32)


def fsl_mrsi_folder(root: Path) -> Path:
    """The layout of FSL-MRS's ``fsl_mrsi`` output, from the test's own maps."""
    for i, metab in enumerate(("NAA", "Cr+PCr", "GPC+PCh", "Ins")):
        for scaling in ("raw", "internal"):
            (root / "concs" / scaling).mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(fit_map(i), AFFINE), root / "concs" / scaling / f"{metab}.nii.gz")
        (root / "uncertainties").mkdir(exist_ok=True)
        nib.save(nib.Nifti1Image(fit_map(i, scale=0.5), AFFINE), root / "uncertainties" / f"{metab}_sd.nii.gz")
        (root / "qc").mkdir(exist_ok=True)
        for kind in ("snr", "fwhm"):
            nib.save(nib.Nifti1Image(fit_map(i, scale=20), AFFINE), root / "qc" / f"{metab}_{kind}.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 2), np.float32), AFFINE), root / "qc" / "fit_failed.nii.gz")
    (root / "fit").mkdir()
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 2, 8), np.float32), AFFINE), root / "fit" / "fit.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((16, 16, 2), np.float32), AFFINE), root / "mask.nii.gz")
    (root / "options.txt").write_text("fsl_mrsi --data ...")
    (root / "concs" / "raw" / ".NAA.nii.gz.tmp-123-ab.nii.gz").write_bytes(b"interrupted")
    return root


def test_find_maps_sorts_an_fsl_mrsi_folder(tmp_path):
    selection = find_maps(fsl_mrsi_folder(tmp_path / "fsl"))
    assert [p.as_posix() for p in selection.maps] == [
        f"concs/{scaling}/{m}.nii.gz" for scaling in ("internal", "raw") for m in ("Cr+PCr", "GPC+PCh", "Ins", "NAA")
    ]
    reasons = {p.as_posix(): reason for p, reason in selection.skipped}
    assert reasons["uncertainties/NAA_sd.nii.gz"].startswith("an uncertainty map (in uncertainties/)")
    assert reasons["qc/Ins_snr.nii.gz"].startswith("a quality-control map")
    assert "not a 3D map" in reasons["fit/fit.nii.gz"] and reasons["mask.nii.gz"].startswith("a mask")
    assert "hidden" in reasons["concs/raw/.NAA.nii.gz.tmp-123-ab.nii.gz"]
    forced = find_maps(tmp_path / "fsl", include=["qc/*_snr.nii.gz"])
    assert Path("qc/NAA_snr.nii.gz") in forced.maps and Path("qc/NAA_fwhm.nii.gz") not in forced.maps


def test_fsl_mrsi_folder_upscaled_into_the_same_layout_with_sidecars(tmp_path, tiny, capsys):
    source = fsl_mrsi_folder(tmp_path / "fsl")
    out = tmp_path / "fsl_x4"
    assert main(["upscale", str(source), "-o", str(out), "--model", str(tiny)]) == 0
    printed = capsys.readouterr()
    assert "skipped uncertainties/NAA_sd.nii.gz: an uncertainty map" in printed.out
    assert "skipped qc/NAA_snr.nii.gz: a quality-control map" in printed.out and "--include" in printed.out
    assert "upscaled 8 map(s)" in printed.out and "8/8" in printed.err  # one progress bar over the maps
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    expected = [
        f"concs/{s}/{m}.{ext}"
        for s in ("internal", "raw")
        for m in ("Cr+PCr", "GPC+PCh", "Ins", "NAA")
        for ext in ("json", "nii.gz")
    ]
    assert written == sorted(expected)
    image = nib.load(out / "concs" / "raw" / "Ins.nii.gz")
    assert image.shape == (64, 64, 2) and nib.aff2axcodes(image.affine) == ("L", "P", "S")
    card = json.loads((out / "concs" / "raw" / "Ins.json").read_text())
    assert card["metabolite"] == "Ins" and card["input"] == str(source / "concs" / "raw" / "Ins.nii.gz")
    assert card["command"].startswith("mrsisr upscale") and "not measured" in card["notice"]
    # a second run refuses to overwrite, names the maps, and writes nothing new
    assert main(["upscale", str(source), "-o", str(out), "--model", str(tiny)]) == 1
    assert "8 of 8 maps" in capsys.readouterr().err


def test_vienna_folder_skips_sd_maps_and_writes_nifti(tmp_path, tiny, capsys):
    source = tmp_path / "vienna"
    source.mkdir()
    for i, metab in enumerate(("NAA+NAAG", "Gln")):
        data = fit_map(i)
        write_minc2(source / f"{metab}_amp_map.mnc", np.transpose(data, (2, 1, 0)), (10.0, 6.875, 6.875), (0, 0, 0))
        write_minc2(source / f"{metab}_sd_map.mnc", np.transpose(data, (2, 1, 0)) / 10, (10.0, 6.875, 6.875), (0, 0, 0))
    out = tmp_path / "x4"
    assert main(["upscale", str(source), "-o", str(out), "--model", str(tiny)]) == 0
    assert "skipped Gln_sd_map.mnc: an uncertainty (SD) map" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "Gln_amp_map.json",
        "Gln_amp_map.nii.gz",
        "NAA+NAAG_amp_map.json",
        "NAA+NAAG_amp_map.nii.gz",
    ]
    image = nib.load(out / "NAA+NAAG_amp_map.nii.gz")
    assert image.shape == (2, 64, 64)  # MINC2's order, slices first, kept
    assert json.loads((out / "NAA+NAAG_amp_map.json").read_text())["metabolite"] == "NAA"


def test_output_folder_inside_input_and_empty_folders_refused(tmp_path, tiny, capsys):
    source = fsl_mrsi_folder(tmp_path / "fsl")
    for out in (source, source / "x4"):
        assert main(["upscale", str(source), "-o", str(out), "--model", str(tiny)]) == 1
        assert "is (inside) the input folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["upscale", str(tmp_path / "empty"), "-o", str(tmp_path / "o"), "--model", str(tiny)]) == 1
    assert "no concentration map" in capsys.readouterr().err
    assert not (source / "x4").exists() and not (tmp_path / "o").exists()
