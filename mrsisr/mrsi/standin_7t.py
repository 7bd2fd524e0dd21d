"""A simulated 7T-like MRSI volume: the STAND-IN for the Vienna 7T glioma maps, which cannot be downloaded here.

It imitates the published 3D-CRT-MRSI maps (64 x 64 x 39 voxels of 3.4 mm, FOV 217.6 mm) of a glioma
patient:

1. anatomy: one phantom subject (:func:`mrsisr.anatomy.phantom.make_phantom`) with a tumour of the given grade;
2. concentrations: :func:`mrsisr.maps.synthesis.synthesize_maps` on the phantom's true tissue fractions
   (tNAA, tCr, tCho in institutional units);
3. the object is sampled on a 1.7 mm in-plane grid (128 x 128) and averaged over each 3.4 mm slab
   (four sub-slices), then every slice is reduced to 64 x 64 by k-space truncation, the point-spread
   function of a 64 x 64 acquisition;
4. Gaussian noise with a standard deviation of ``noise_fraction`` of the map's median brain value,
   clipped at 0 (spectral fitting reports non-negative concentrations);
5. voxels outside the brain are NaN, as in the published maps.

The phantom's FLAIR, sampled the same way but kept at 128 x 128, is the co-registered guide.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from mrsisr.maps.kspace import fourier_resample
from mrsisr.mrsi.io import KINDS
from mrsisr.study.atomic import atomic_path

MATRIX = 64
N_SLICES = 39
VOXEL_MM = 3.4
OVERSAMPLING = 2  # the object is sampled at VOXEL_MM / 2 in-plane before the k-space point-spread function
SUB_SLICES = 4  # samples averaged across each slab
STANDIN_LABEL = "STAND-IN: simulated 7T-like MRSI (phantom anatomy), not patient data"


def standin_affine() -> np.ndarray:
    """Affine of the 64 x 64 x 39 stand-in grid (3.4 mm isotropic, RAS+, centred on the origin)."""
    affine = np.diag([VOXEL_MM, VOXEL_MM, VOXEL_MM, 1.0])
    affine[:3, 3] = -VOXEL_MM * (np.array([MATRIX, MATRIX, N_SLICES]) - 1) / 2.0
    return affine


def _fine_coordinates(phantom_shape: tuple[int, int, int], phantom_voxel_mm: float) -> np.ndarray:
    """Phantom voxel coordinates of the oversampled in-plane grid with ``SUB_SLICES`` samples per slab."""
    n_fine = MATRIX * OVERSAMPLING
    fine_mm = VOXEL_MM / OVERSAMPLING
    xy = (np.arange(n_fine) - (n_fine - 1) / 2.0) * fine_mm
    slab = (np.arange(N_SLICES) - (N_SLICES - 1) / 2.0) * VOXEL_MM
    sub = (np.arange(SUB_SLICES) - (SUB_SLICES - 1) / 2.0) * VOXEL_MM / SUB_SLICES
    z = (slab[:, None] + sub[None, :]).reshape(-1)
    grid = np.stack(np.meshgrid(xy, xy, z, indexing="ij"))
    centre = (np.asarray(phantom_shape, dtype=np.float64) - 1) / 2.0
    return grid / phantom_voxel_mm + centre[:, None, None, None]


def _sample_slabs(volume: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Sample ``volume`` at ``coords`` (linear) and average the sub-slices of each slab: (128, 128, 39)."""
    sampled = ndimage.map_coordinates(np.asarray(volume, dtype=np.float64), coords, order=1, cval=0.0)
    return sampled.reshape(*sampled.shape[:2], N_SLICES, SUB_SLICES).mean(axis=3)


def make_standin(seed: int, grade: str = "HGG", noise_fraction: float = 0.05) -> dict:
    """Simulate the 7T-like stand-in volume.

    Parameters
    ----------
    seed : int
        Seed of the phantom, the concentrations and the noise.
    grade : {"LGG", "HGG"}
        Tumour grade of the phantom (the Vienna patients had glioblastomas: HGG).
    noise_fraction : float
        Noise SD as a fraction of each map's median value in the brain.

    Returns
    -------
    dict
        ``maps``: kind -> (64, 64, 39) float32, NaN outside the brain; ``affine``: their (4, 4) affine;
        ``flair``: (128, 128, 39) float32 guide; ``flair_affine``; ``grade``; ``label``.
    """
    from mrsisr.anatomy.phantom import make_phantom
    from mrsisr.maps.synthesis import synthesize_maps
    from mrsisr.upscale import upscaled_affine

    rng = np.random.default_rng(seed)
    phantom = make_phantom(seed, grade)
    concentrations = synthesize_maps(
        phantom["gm_true"], phantom["wm_true"], phantom["csf_true"], phantom["labels"], grade, rng
    )
    coords = _fine_coordinates(phantom["brain"].shape, float(phantom["voxel_mm"][0]))
    brain_fraction = _sample_slabs(phantom["brain"], coords)
    brain = brain_fraction.reshape(MATRIX, OVERSAMPLING, MATRIX, OVERSAMPLING, N_SLICES).mean(axis=(1, 3)) > 0.5
    maps = {}
    for kind in KINDS:
        fine = _sample_slabs(concentrations[kind], coords)
        acquired = np.moveaxis(fourier_resample(np.moveaxis(fine, 2, 0), MATRIX), 0, 2).astype(np.float64)
        sigma = noise_fraction * float(np.median(acquired[brain]))
        acquired = np.clip(acquired + rng.normal(0.0, sigma, size=acquired.shape), 0.0, None)
        maps[kind] = np.where(brain, acquired, np.nan).astype(np.float32)
    flair = _sample_slabs(phantom["flair"], coords).astype(np.float32)
    affine = standin_affine()
    return {
        "maps": maps,
        "affine": affine,
        "flair": flair,
        "flair_affine": upscaled_affine(affine, OVERSAMPLING),
        "grade": grade,
        "label": STANDIN_LABEL,
    }


def write_standin(folder: str | os.PathLike, standin: dict) -> dict[str, Path]:
    """Write the stand-in's maps (``NAA.nii.gz``, ``tCr.nii.gz``, ``tCho.nii.gz``) and ``flair.nii.gz``.

    Returns the written paths by kind, with the guide under ``"flair"``.
    """
    folder = Path(folder)
    volumes = {kind: (data, standin["affine"]) for kind, data in standin["maps"].items()}
    volumes["flair"] = (standin["flair"], standin["flair_affine"])
    paths = {}
    for name, (data, affine) in volumes.items():
        image = nib.Nifti1Image(data, affine)
        image.header["descrip"] = b"mrsisr STAND-IN (simulated)"
        with atomic_path(folder / f"{name}.nii.gz", suffix=".nii.gz") as tmp:
            nib.save(image, tmp)
        paths[name] = folder / f"{name}.nii.gz"
    return paths
