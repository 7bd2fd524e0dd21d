"""The ``mrsisr`` command: ``run`` the study, build the ``book``, ``clean`` unused caches, ``upscale`` MRSI files."""

from __future__ import annotations

import argparse
import importlib.metadata
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from mrsisr.stages import STAGES
from mrsisr.study.profiles import DEFAULT_PROFILE


def version() -> str:
    """The installed mrsisr version (package metadata), else the package's ``__version__``."""
    try:
        return importlib.metadata.version("mrsisr")
    except importlib.metadata.PackageNotFoundError:
        from mrsisr import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``mrsisr`` command."""
    parser = argparse.ArgumentParser(prog="mrsisr", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mrsisr {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute the study's notebooks with papermill")
    run.add_argument("--profile", default=DEFAULT_PROFILE, help="ci | demo | paper (default: %(default)s)")
    run.add_argument(
        "--stage",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this stage (repeatable): " + ", ".join(s.name for s in STAGES),
    )
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a parameter")
    run.add_argument("--runs-root", default="runs", help="folder holding runs/<profile> (default: %(default)s)")
    run.add_argument("--figures-dir", default="figures", help="where notebooks write figures (default: %(default)s)")

    book = sub.add_parser("book", help="build the Jupyter Book from an executed run")
    book.add_argument("--profile", default=DEFAULT_PROFILE)
    book.add_argument("--runs-root", default="runs")

    clean = sub.add_parser(
        "clean",
        help="remove the cache folders of a run that its current outputs no longer use",
        description="Remove the complete cache folders under runs/<profile>/ that no current output, page or "
        "output they were built from uses (left by earlier parameter settings); incomplete folders stay, so a "
        "killed training still resumes. Do not clean a profile while `mrsisr run` runs on it.",
    )
    clean.add_argument("--profile", default=DEFAULT_PROFILE)
    clean.add_argument("--runs-root", default="runs")
    clean.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")

    upscale = sub.add_parser(
        "upscale",
        help="upscale MRSI metabolite maps (a NIfTI or MINC2 file, or an MRSI output folder) four-fold in-plane",
        description="Upscale a map, or every concentration map of a folder (FSL-MRS fsl_mrsi output, Vienna "
        "<Met>_amp_map.mnc, any folder of 3D maps) into -o, mirroring its layout; each output gets a JSON "
        "sidecar. The packaged model was trained on simulated phantom maps only.",
    )
    upscale.add_argument("input", help="3D (or singleton 4D) map (.nii, .nii.gz, .mnc) or a folder of maps")
    upscale.add_argument("-o", "--output", required=True, help="output NIfTI (.nii or .nii.gz), or folder")
    upscale.add_argument("--guide", default=None, help="co-registered FLAIR or T1 (same field of view and slices)")
    upscale.add_argument("--model", default=None, help="trained .keras model (default: the packaged unguided model)")
    upscale.add_argument("--metabolite", default=None, help="map name when the file name does not say (one file)")
    upscale.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="PATTERN",
        help="folder mode: upscale files matching this shell pattern although they look like uncertainty, QC or "
        "mask maps (repeatable), e.g. 'qc/*_snr.nii.gz'",
    )
    upscale.add_argument(
        "--data-consistency", action="store_true", help="make the output's central k-space the input's"
    )
    upscale.add_argument("--allow-oblique", action="store_true", help="upscale maps whose slices are not axial")
    upscale.add_argument("--force", action="store_true", help="overwrite existing outputs (never the input or guide)")
    return parser


def _upscale(args: argparse.Namespace, command: str) -> None:
    """Upscale one file or a folder as the ``upscale`` arguments say."""
    from mrsisr.upscale import upscale_file, upscale_folder

    options = {
        "guide": args.guide,
        "model_path": args.model,
        "force": args.force,
        "allow_oblique": args.allow_oblique,
        "data_consistency": args.data_consistency,
        "command": command,
    }
    if Path(args.input).is_dir():
        if args.metabolite is not None:
            raise ValueError("--metabolite names one map: a folder's maps are named by their files")
        upscale_folder(args.input, args.output, include=args.include, **options)
    else:
        if args.include:
            raise ValueError("--include selects maps of a folder: the input is one file")
        upscale_file(args.input, args.output, metabolite=args.metabolite, **options)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mrsisr`` command; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            from mrsisr.study.runner import run_study

            run_study(
                profile=args.profile,
                stages=args.stage,
                overrides=args.set,
                runs_root=args.runs_root,
                figures_dir=args.figures_dir,
            )
        elif args.command == "book":
            from mrsisr.study.book import build_book

            build_book(profile=args.profile, runs_root=args.runs_root)
        elif args.command == "clean":
            from mrsisr.study.clean import clean_run, describe

            report = clean_run(Path(args.runs_root) / args.profile, dry_run=args.dry_run)
            print(describe(report, dry_run=args.dry_run))
        elif args.command == "upscale":
            _upscale(args, shlex.join(["mrsisr", *(sys.argv[1:] if argv is None else argv)]))
    except (ValueError, OSError, RuntimeError) as error:
        print(f"mrsisr {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
