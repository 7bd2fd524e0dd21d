"""How well is each real case's FLAIR registered to its T1? The in-plane shift that best aligns their edges.

The study renders its phantom FLAIR with a small misregistration to the maps' anatomy (``flair_shift_mm``,
``flair_rotation_deg``); this script measures what real data show, for every BraTS case under a folder (any
release the study reads). For each case it compares five axial slices spread over the middle third of the
brain, at the files' own 1 mm grid (:func:`mrsisr.anatomy.alignment.edge_alignment`), and prints the best
shift in mm along the first two (RAS+) axes and the mean edge correlation before and after it. Example (under a
minute per case on 2 cores):

    python scripts/flair_t1_alignment.py ../shared/data/brats-samples
"""

from __future__ import annotations

import argparse
import sys

import nibabel as nib
import numpy as np

from mrsisr.anatomy.alignment import edge_alignment
from mrsisr.anatomy.brats import BratsCase, find_cases
from mrsisr.anatomy.nifti import load_nifti_volume, same_grid
from mrsisr.anatomy.segmentation import CLIP_PERCENTILE

N_SLICES = 5


def _clipped(path) -> tuple[np.ndarray, nib.Nifti1Image]:
    """The checked RAS+ volume of ``path``, negatives to 0, clipped at the segmentation's percentile.

    The percentile (:data:`mrsisr.anatomy.segmentation.CLIP_PERCENTILE`) is of the non-zero voxels: bright
    vessels would otherwise dominate the edges.
    """
    image = load_nifti_volume(path)
    data = np.asarray(image.dataobj)
    inside = data[data > 0]
    if inside.size == 0:
        raise ValueError(f"{path}: no positive voxel")
    return np.clip(data, 0.0, np.percentile(inside, CLIP_PERCENTILE)), image


def case_alignment(case: BratsCase) -> dict:
    """The best FLAIR-to-T1 edge shift of one case, in mm, with the correlations (one row of the table)."""
    t1, t1_image = _clipped(case.t1)
    flair, flair_image = _clipped(case.flair)
    if not same_grid(t1_image, flair_image, tol_mm=1e-3):
        raise ValueError(f"{case.flair}: not on the voxel grid of {case.t1}")
    brain_slices = np.flatnonzero((t1 > 0).any(axis=(0, 1)))
    lo, hi = np.percentile(brain_slices, [33.3, 66.7])
    slices = [int(round(k)) for k in np.linspace(lo, hi, N_SLICES)]
    found = edge_alignment(t1, flair, slices)
    voxel = t1_image.header.get_zooms()[:2]
    return {
        "case": case.subject,
        "release": case.release,
        "shift_mm_axis0": found.shift_vox[0] * float(voxel[0]),
        "shift_mm_axis1": found.shift_vox[1] * float(voxel[1]),
        "edge_correlation_unshifted": found.correlation_at_zero,
        "edge_correlation_shifted": found.correlation,
    }


def main(argv: list[str] | None = None) -> int:
    """Print the table for every case under the folder; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="a BraTS folder of any release (as brats_root)")
    args = parser.parse_args(argv)
    try:
        rows = [case_alignment(case) for case in find_cases(args.root)]
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    header = list(rows[0]) if rows else []
    print("\t".join(header))
    for row in rows:
        print("\t".join(f"{value:.3f}" if isinstance(value, float) else str(value) for value in row.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
