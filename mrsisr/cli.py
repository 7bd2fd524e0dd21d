"""The ``mrsisr`` command: ``run`` the study, build the ``book``, ``upscale`` MRSI files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mrsisr.stages import STAGES
from mrsisr.study.profiles import DEFAULT_PROFILE


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``mrsisr`` command."""
    parser = argparse.ArgumentParser(prog="mrsisr", description=__doc__)
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

    upscale = sub.add_parser("upscale", help="upscale an MRSI metabolite map (NIfTI or MINC2) four-fold in-plane")
    upscale.add_argument("input", help="3D (or singleton 4D) metabolite map: .nii, .nii.gz or .mnc")
    upscale.add_argument("-o", "--output", required=True, help="output NIfTI (.nii or .nii.gz)")
    upscale.add_argument("--guide", default=None, help="co-registered FLAIR or T1 (same field of view and slices)")
    upscale.add_argument("--model", default=None, help="trained .keras model (default: the packaged unguided model)")
    upscale.add_argument("--metabolite", default=None, help="metabolite name when the file name does not say")
    upscale.add_argument("--force", action="store_true", help="overwrite an existing output")
    return parser


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
        elif args.command == "upscale":
            from mrsisr.upscale import upscale_file

            upscale_file(
                args.input,
                args.output,
                guide=args.guide,
                model_path=args.model,
                metabolite=args.metabolite,
                force=args.force,
            )
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as error:
        print(f"mrsisr {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
