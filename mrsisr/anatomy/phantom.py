"""Phantom subjects built from the ICBM152 2009 templates that ship inside nilearn.

Each phantom is the template's grey- and white-matter probability maps (CSF = 1 - GM - WM inside the
brain), moved by a random affine (rotation, scaling, shift) and a random smooth deformation, with a
synthetic glioma in the BraTS label convention (1 necrotic/non-enhancing core, 2 oedema, 4 enhancing)
that pushes the tissue aside. The warped fractions are kept as the ground truth of the segmentation (and
are what the metabolite maps are synthesised from). The template probabilities are squared and
renormalised first (:func:`_sharpen`): an average of 152 brains is blurrier than one brain.

The T1 is drawn from the tissue fractions with a partial-volume image model (each voxel's signal is the
fraction-weighted mean of the tissue signals, the model a partial-volume segmentation inverts), then a
random smooth bias field and Gaussian noise are applied.

The FLAIR, the network's guide, is rendered so that it does not give the maps' answer away
(:func:`render_flair`): it is acquired the way a clinical FLAIR is, not drawn from the same model. It has
its own contrast (tissue signals drawn per subject), textured tumour and oedema, a small rigid
misregistration to the maps' anatomy, a thick-slice acquisition resampled back to the grid, its own bias
field and Rician noise.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

GRADES = ("LGG", "HGG")
TEMPLATE_DIR = Path(nib.__file__).parent.parent / "nilearn" / "datasets" / "data"
TEMPLATE_NAME = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
SHARPEN_POWER = 2.0
GRID_MM = (176.0, 216.0, 176.0)  # extent of the phantom grid, x, y, z (the template brain is about 140 x 175 x 130 mm)

BRAIN_CENTRE_MNI = (0.0, -18.0, 8.0)  # the template's brain centre in MNI mm: the centre of the phantom grid

# Signal of each tissue class in T1, relative to white matter (before subject variation): WM > GM > CSF,
# tumour hypointense.
T1_SIGNAL = {"csf": 0.30, "gm": 0.70, "wm": 1.00, 1: 0.45, 2: 0.58, 4: 0.62, "necrosis": 0.28}
# FLAIR contrast model: each subject draws its tissue signals from these ranges. CSF dark (incompletely
# nulled), GM brighter than WM by the drawn ratio, oedema the brightest, enhancing rim and necrosis lower.
FLAIR_RANGES = {
    "csf": (0.03, 0.15),
    "wm": (0.34, 0.48),
    "gm_over_wm": (1.12, 1.45),
    1: (0.72, 0.92),
    2: (0.82, 1.00),
    4: (0.66, 0.88),
    "necrosis": (0.35, 0.60),
}
FLAIR_SLICE_MM = (4.0, 6.0)  # thickness of the acquired FLAIR slices (contiguous), resampled back to the grid


@dataclass(frozen=True)
class FlairMisregistration:
    """The largest rigid motion of a rendered FLAIR against the maps' anatomy, drawn uniformly per subject.

    ``shift_mm`` bounds the shift along each axis and ``rotation_deg`` the rotation about each axis (about
    the grid centre). Zero for both renders a FLAIR in register with the maps, as a co-registered
    acquisition would be at best.
    """

    shift_mm: float = 1.5
    rotation_deg: float = 1.5


#: The study's default FLAIR motion (the segmentation stage's ``flair_shift_mm`` and ``flair_rotation_deg``).
DEFAULT_MISREGISTRATION = FlairMisregistration()


def template_path(kind: str) -> Path:
    """Return the path of nilearn's ICBM152 2009 template ``kind`` (``t1``, ``gm`` or ``wm``)."""
    path = TEMPLATE_DIR / TEMPLATE_NAME.format(kind)
    if not path.is_file():
        raise FileNotFoundError(f"ICBM152 template {path} is missing: reinstall nilearn (requirements.txt)")
    return path


@functools.lru_cache(maxsize=4)
def load_templates(voxel_mm: float) -> dict[str, np.ndarray]:
    """Return the template GM, WM and brain mask averaged onto a ``voxel_mm`` isotropic grid.

    The 1 mm templates are block-averaged (``voxel_mm`` must be a whole number of millimetres), so the
    fractions stay partial-volume fractions. Arrays are RAS+, float32; ``affine`` maps voxels to mm.
    """
    factor = int(round(voxel_mm))
    if factor < 1 or abs(factor - voxel_mm) > 1e-6:
        raise ValueError(f"phantom voxel_mm must be a whole number of millimetres, got {voxel_mm}")
    images = {kind: nib.as_closest_canonical(nib.load(template_path(kind))) for kind in ("t1", "gm", "wm")}
    t1 = images["t1"].get_fdata(dtype=np.float32)
    maps = {
        "gm": images["gm"].get_fdata(dtype=np.float32) / 255.0,
        "wm": images["wm"].get_fdata(dtype=np.float32) / 255.0,
        "brain": (t1 > 0.2 * t1.max()).astype(np.float32),  # the T1 template is skull-stripped
    }
    maps["gm"], maps["wm"] = _sharpen(maps["gm"], maps["wm"], SHARPEN_POWER)
    shape = tuple(n // factor * factor for n in t1.shape)
    out = {}
    for name, volume in maps.items():
        v = volume[: shape[0], : shape[1], : shape[2]]
        out[name] = v.reshape(shape[0] // factor, factor, shape[1] // factor, factor, shape[2] // factor, factor).mean(
            axis=(1, 3, 5)
        )
    affine = images["t1"].affine.copy()
    affine[:3, :3] *= factor
    affine[:3, 3] += affine[:3, :3] @ np.full(3, (factor - 1) / (2 * factor))
    out["affine"] = affine
    return out


def _sharpen(gm: np.ndarray, wm: np.ndarray, power: float) -> tuple[np.ndarray, np.ndarray]:
    """Raise the CSF/GM/WM probabilities to ``power`` and renormalise: individual-like tissue maps.

    The ICBM152 maps average 152 brains and are blurrier than any one brain; squaring the
    probabilities keeps each voxel's winning tissue and narrows the partial-volume borders.
    """
    stack = np.stack([np.clip(1.0 - gm - wm, 0.0, 1.0), gm, wm]) ** power
    stack /= np.maximum(stack.sum(axis=0), 1e-12)
    return stack[1], stack[2]


def _rotation(angles_rad: np.ndarray) -> np.ndarray:
    ax, ay, az = angles_rad
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], nodes: int) -> np.ndarray:
    """Return a smooth random field of ``shape`` with values of order 1.

    Standard-normal values on a ``nodes``-per-axis lattice are interpolated by cubic splines onto a grid
    four times coarser than ``shape``, then linearly onto ``shape`` (fast, and still smooth).
    """
    coarse = rng.standard_normal((nodes,) * len(shape))
    middle = [max(n // 4, nodes) for n in shape]
    field = ndimage.zoom(coarse, [m / nodes for m in middle], order=3, mode="nearest", grid_mode=True)
    field = ndimage.zoom(
        field, [n / m for n, m in zip(shape, field.shape, strict=True)], order=1, mode="nearest", grid_mode=True
    )
    return field[tuple(slice(0, n) for n in shape)].astype(np.float32)


def _grid_coordinates(shape: tuple[int, int, int], voxel_mm: float) -> np.ndarray:
    """Millimetre coordinates (3, *shape) of the phantom grid, centred on 0."""
    axes = [(np.arange(n) - (n - 1) / 2) * voxel_mm for n in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij")).astype(np.float32)


def _tumour_site(rng: np.random.Generator, wm: np.ndarray, brain: np.ndarray, radius_vox: float) -> np.ndarray:
    """Pick a tumour centre (voxel index) in the cerebral white matter, at least ``radius_vox`` inside."""
    depth = ndimage.distance_transform_edt(brain > 0.5)
    zmin = int(0.40 * wm.shape[2])  # above the cerebellum and brainstem
    candidates = np.argwhere((wm > 0.5) & (depth > radius_vox))
    candidates = candidates[candidates[:, 2] >= zmin]
    if len(candidates) == 0:
        candidates = np.argwhere(depth >= depth.max() * 0.8)
    return candidates[rng.integers(len(candidates))].astype(np.float64)


def _tumour_shape(rng: np.random.Generator, coords_mm: np.ndarray, centre_mm: np.ndarray) -> np.ndarray:
    """Return a normalised 'radius' field: an ellipsoid with a random orientation and a lumpy surface."""
    axes_scale = rng.uniform(0.7, 1.3, size=3)
    rot = _rotation(rng.uniform(-np.pi, np.pi, size=3))
    rel = np.tensordot(rot.T, coords_mm - centre_mm[:, None, None, None], axes=1)
    dist = np.sqrt(sum((rel[i] / axes_scale[i]) ** 2 for i in range(3)))
    lumps = smooth_field(rng, dist.shape, nodes=8)
    return dist * (1.0 + 0.18 * lumps)


def make_tumour(
    rng: np.random.Generator, grade: str, wm: np.ndarray, brain: np.ndarray, voxel_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw a synthetic glioma on the phantom grid.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    grade : {"LGG", "HGG"}
        High-grade tumours get a necrotic core and an enhancing rim; low-grade ones a non-enhancing
        core (a small enhancing part in one of five).
    wm, brain : numpy.ndarray
        White-matter fraction and brain mask (float) of the unwarped subject, shape (X, Y, Z).
    voxel_mm : float
        Voxel size.

    Returns
    -------
    labels : numpy.ndarray of uint8
        BraTS labels 0/1/2/4.
    necrosis : numpy.ndarray of bool
        Voxels of label 1 that are necrotic (fluid-like signal) rather than solid non-enhancing tumour.
    centre_mm : numpy.ndarray
        Tumour centre in grid millimetres (the frame of :func:`_grid_coordinates`).
    """
    shape = wm.shape
    coords = _grid_coordinates(shape, voxel_mm)
    core_mm = rng.uniform(10.0, 22.0) if grade == "HGG" else rng.uniform(9.0, 20.0)
    oedema_mm = core_mm + (rng.uniform(8.0, 20.0) if grade == "HGG" else rng.uniform(3.0, 10.0))
    centre_vox = _tumour_site(rng, wm, brain, radius_vox=(core_mm + 0.5 * oedema_mm) / voxel_mm / 1.5)
    centre_mm = (centre_vox - (np.array(shape) - 1) / 2) * voxel_mm
    radius = _tumour_shape(rng, coords, centre_mm)
    inside = brain > 0.5
    # Oedema follows the white matter: it reaches further where the tissue is white matter.
    oedema = (radius < oedema_mm * (0.75 + 0.35 * wm)) & inside
    core = (radius < core_mm) & inside
    labels = np.zeros(shape, dtype=np.uint8)
    labels[oedema] = 2
    necrosis = np.zeros(shape, dtype=bool)
    enhancing = grade == "HGG" or rng.random() < 0.2
    if enhancing:
        rim_mm = rng.uniform(2.0, 5.0) if grade == "HGG" else rng.uniform(1.5, 2.5)
        labels[core] = 4
        inner = (radius < core_mm - rim_mm) & inside
        labels[inner] = 1
        necrosis = inner & (grade == "HGG")
    else:
        labels[core] = 1
    return labels, necrosis, centre_mm


def _warp_coordinates(
    rng: np.random.Generator, shape: tuple[int, int, int], voxel_mm: float, source_affine: np.ndarray
) -> np.ndarray:
    """Voxel coordinates in the template for each phantom voxel: random affine + smooth deformation."""
    coords = _grid_coordinates(shape, voxel_mm)
    rot = _rotation(np.deg2rad(rng.uniform(-8.0, 8.0, size=3) * np.array([0.6, 0.6, 1.0])))
    scale = rng.uniform(0.95, 1.05, size=3) * rng.uniform(0.95, 1.05)
    shift = rng.uniform(-4.0, 4.0, size=3)
    deformation = np.stack([smooth_field(rng, shape, nodes=6) for _ in range(3)]) * rng.uniform(1.5, 3.5)
    moved = np.tensordot(rot / scale[None, :], coords + deformation, axes=1) + shift[:, None, None, None]
    # The template's brain centre sits at about (0, -18, 8) mm in MNI space.
    mni = moved + np.array(BRAIN_CENTRE_MNI)[:, None, None, None]
    inv = np.linalg.inv(source_affine)
    return np.tensordot(inv[:3, :3], mni, axes=1) + inv[:3, 3][:, None, None, None]


def _mass_effect(coords_vox: np.ndarray, centre_mm: np.ndarray, voxel_mm: float, push_mm: float) -> np.ndarray:
    """Shift template look-ups towards the tumour centre so the tissue appears pushed outwards."""
    shape = coords_vox.shape[1:]
    rel = _grid_coordinates(shape, voxel_mm) - centre_mm[:, None, None, None]
    dist = np.sqrt((rel**2).sum(axis=0)) + 1e-3
    sigma = 3.0 * push_mm + 10.0
    pull = push_mm * np.exp(-0.5 * (dist / sigma) ** 2) / dist
    return coords_vox - rel * pull / voxel_mm


def tissue_image(
    fractions: dict[str, np.ndarray], labels: np.ndarray, necrosis: np.ndarray, signal: dict
) -> np.ndarray:
    """Partial-volume image model: fraction-weighted tissue signal, tumour labels on top.

    Parameters
    ----------
    fractions : dict
        ``csf``, ``gm``, ``wm`` fraction volumes.
    labels : numpy.ndarray
        BraTS labels; labelled voxels take the label's signal.
    necrosis : numpy.ndarray of bool
        Voxels with the necrotic signal.
    signal : dict
        Signal of each tissue, label and ``"necrosis"`` (e.g. :data:`T1_SIGNAL`, :data:`FLAIR_SIGNAL`).
    """
    image = sum(signal[t] * fractions[t] for t in ("csf", "gm", "wm"))
    for label in (2, 1, 4):
        image = np.where(labels == label, signal[label], image)
    return np.where(necrosis, signal["necrosis"], image)


def _flair_signal(rng: np.random.Generator) -> dict:
    """Draw one subject's FLAIR tissue signals from :data:`FLAIR_RANGES` (a signal dict for tissue_image)."""
    drawn = {k: rng.uniform(lo, hi) for k, (lo, hi) in FLAIR_RANGES.items()}
    drawn["gm"] = drawn["wm"] * drawn.pop("gm_over_wm")
    return drawn


def _sample_z(volume: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``volume`` along its last axis at fractional ``positions`` (clamped to the ends)."""
    positions = np.clip(positions, 0.0, volume.shape[-1] - 1.0)
    low = np.minimum(np.floor(positions).astype(np.int64), volume.shape[-1] - 2)
    weight = positions - low
    return volume[..., low] * (1.0 - weight) + volume[..., low + 1] * weight


def thick_slice_acquisition(volume: np.ndarray, slice_vox: float, offset_vox: float, samples: int = 8) -> np.ndarray:
    """Acquire contiguous axial slices ``slice_vox`` voxels thick and resample them back onto the grid.

    Each slice is the mean of the volume over its thickness along z (a box slice profile, sampled at
    ``samples`` points); the slices, centred at ``offset_vox + i * slice_vox``, are then interpolated
    linearly back to the original z positions, as a scanner's thick FLAIR is resampled to thin voxels.
    """
    n = volume.shape[-1]
    centres = np.arange(offset_vox, n - 1 + slice_vox, slice_vox)
    within = ((np.arange(samples) + 0.5) / samples - 0.5) * slice_vox
    slices = np.stack([_sample_z(volume, c + within).mean(axis=-1) for c in centres], axis=-1)
    return _sample_z(slices, (np.arange(n) - offset_vox) / slice_vox)


def _rigid_resample(volume: np.ndarray, voxel_mm: float, rotation_deg: np.ndarray, shift_mm: np.ndarray) -> np.ndarray:
    """Resample ``volume`` after a rigid motion about the grid centre (linear interpolation, zero outside)."""
    coords = _grid_coordinates(volume.shape, voxel_mm)
    moved = np.tensordot(_rotation(np.deg2rad(rotation_deg)), coords, axes=1) + shift_mm[:, None, None, None]
    centre = (np.array(volume.shape) - 1) / 2
    return ndimage.map_coordinates(volume, moved / voxel_mm + centre[:, None, None, None], order=1, cval=0.0)


def render_flair(
    rng: np.random.Generator,
    fractions: dict[str, np.ndarray],
    labels: np.ndarray,
    necrosis: np.ndarray,
    brain: np.ndarray,
    voxel_mm: float,
    misregistration: FlairMisregistration = DEFAULT_MISREGISTRATION,
) -> np.ndarray:
    """Render a FLAIR of a subject as a clinical acquisition would show it, not as the maps' model does.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random draw (contrast, texture, motion, slice offset, bias, noise).
    fractions : dict
        ``csf``, ``gm``, ``wm`` fractions of the subject (the maps' anatomy).
    labels, necrosis : numpy.ndarray
        BraTS tumour labels and necrotic voxels.
    brain : numpy.ndarray of bool
        Brain mask; the FLAIR is zero outside it (skull-stripped with the T1's mask, as BraTS is).
    voxel_mm : float
        Isotropic voxel size.
    misregistration : FlairMisregistration
        Bounds of the rigid motion against the maps' anatomy (the same number of draws whatever they are,
        so the subject's other draws do not change with them).

    Returns
    -------
    numpy.ndarray of float32
        FLAIR in relative units (white matter about 0.4), non-negative.
    """
    shape = labels.shape
    image = tissue_image(fractions, labels, necrosis, _flair_signal(rng))
    lesion = labels > 0
    texture = 1.0 + rng.uniform(0.08, 0.18) * smooth_field(rng, shape, nodes=24)
    image = np.where(lesion, image * texture, image)
    rotation = rng.uniform(-misregistration.rotation_deg, misregistration.rotation_deg, size=3)
    shift = rng.uniform(-misregistration.shift_mm, misregistration.shift_mm, size=3)
    image = _rigid_resample(image, voxel_mm, rotation, shift)
    slice_vox = rng.uniform(*FLAIR_SLICE_MM) / voxel_mm
    image = thick_slice_acquisition(image, slice_vox, offset_vox=rng.uniform(0.0, slice_vox))
    image = image * np.exp(rng.uniform(0.05, 0.12) * smooth_field(rng, shape, nodes=4))
    sigma = rng.uniform(0.015, 0.035)
    image = np.hypot(image + rng.normal(0.0, sigma, size=shape), rng.normal(0.0, sigma, size=shape))  # Rician
    return (image * brain).astype(np.float32)


def grid_affine(shape: tuple[int, int, int], voxel_mm: float) -> np.ndarray:
    """Voxel-to-mm affine of a phantom grid: RAS+, ``voxel_mm`` voxels, centred on the template brain (MNI mm)."""
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = np.array(BRAIN_CENTRE_MNI) - (np.array(shape) - 1) / 2 * voxel_mm
    return affine


def make_phantom(
    seed: int,
    grade: str,
    voxel_mm: float = 2.0,
    flair_misregistration: FlairMisregistration = DEFAULT_MISREGISTRATION,
) -> dict:
    """Build one phantom subject.

    Parameters
    ----------
    seed : int
        Seed of every random draw of this subject; the same seed gives the same arrays bit for bit.
    grade : {"LGG", "HGG"}
        Tumour grade.
    voxel_mm : float
        Isotropic voxel size in mm (a whole number; 2 mm by default, finer than the 1.72 mm maps need
        after the 10 mm slice averaging downstream).
    flair_misregistration : FlairMisregistration
        Bounds of the FLAIR's rigid motion against the maps' anatomy; only the FLAIR depends on them.

    Returns
    -------
    dict
        ``t1``, ``flair`` (float32), ``labels`` (uint8, BraTS 0/1/2/4), ``brain`` (bool), ``gm_true``,
        ``wm_true``, ``csf_true`` (float32 fractions, zero outside the brain and on tumour labels),
        ``voxel_mm`` (float64, shape (3,)), ``affine`` (4x4 float64, voxel to MNI-like RAS+ mm; see
        :func:`grid_affine`) and ``grade``. The FLAIR comes from :func:`render_flair`. Arrays are RAS+,
        axial slice ``a[:, :, k]``.
    """
    if grade not in GRADES:
        raise ValueError(f"grade must be one of {GRADES}, got {grade!r}")
    rng = np.random.default_rng(seed)
    templates = load_templates(voxel_mm)
    shape = tuple(int(round(e / voxel_mm)) for e in GRID_MM)

    coords = _warp_coordinates(rng, shape, voxel_mm, templates["affine"])
    sample = functools.partial(ndimage.map_coordinates, order=1, mode="constant", cval=0.0)
    wm_plain = sample(templates["wm"], coords)
    brain_plain = sample(templates["brain"], coords)
    labels, necrosis, centre_mm = make_tumour(rng, grade, wm_plain, brain_plain, voxel_mm)

    push_mm = float(np.cbrt((labels > 0).sum() * voxel_mm**3) * rng.uniform(0.15, 0.3))
    coords = _mass_effect(coords, centre_mm, voxel_mm, push_mm)
    brain = sample(templates["brain"], coords) > 0.5
    gm = np.clip(sample(templates["gm"], coords), 0.0, 1.0) * brain
    wm = np.clip(sample(templates["wm"], coords), 0.0, 1.0) * brain
    total = np.maximum(gm + wm, 1.0)
    gm, wm = gm / total, wm / total
    csf = (1.0 - gm - wm) * brain
    labels = labels * brain.astype(np.uint8)
    necrosis &= brain

    fractions = {"gm": gm, "wm": wm, "csf": csf}
    jitter = {k: v * rng.uniform(0.95, 1.05) for k, v in T1_SIGNAL.items()}
    t1 = tissue_image(fractions, labels, necrosis, jitter)
    tumour_texture = 1.0 + 0.08 * smooth_field(rng, shape, nodes=20) * (labels > 0)
    bias = np.exp(0.06 * smooth_field(rng, shape, nodes=4))
    t1 = np.clip(t1 * tumour_texture * bias + rng.normal(0.0, 0.025, size=shape), 0.0, None) * brain
    flair = render_flair(rng, fractions, labels, necrosis, brain, voxel_mm, flair_misregistration)
    images = {"t1": t1, "flair": flair}
    images = {name: (image * rng.uniform(500.0, 1500.0)).astype(np.float32) for name, image in images.items()}

    outside = ~brain | (labels > 0)
    return {
        "t1": images["t1"],
        "flair": images["flair"],
        "labels": labels.astype(np.uint8),
        "brain": brain,
        "gm_true": np.where(outside, 0.0, gm).astype(np.float32),
        "wm_true": np.where(outside, 0.0, wm).astype(np.float32),
        "csf_true": np.where(outside, 0.0, csf).astype(np.float32),
        "voxel_mm": np.full(3, float(voxel_mm)),
        "affine": grid_affine(shape, voxel_mm),
        "grade": grade,
    }
