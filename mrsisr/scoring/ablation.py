"""The comparison of trained networks in notebook 06: each variant against the study's network, with seed noise.

Each variant is trained once at the study's seed; the study's network (``main``) also at further seeds. A
variant's difference from ``main`` is its mean minus main's (same seed), tested at the level of subjects
(:func:`mrsisr.scoring.stats.subject_level_test`); the SD of main's mean PSNR over its seeds says how large a
difference seed noise alone makes. When the evaluation's real-anatomy split is configured, every network is
also scored on it, and the same comparison is made there (columns prefixed ``real_``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mrsisr.scoring.stats import subject_level_test
from mrsisr.scoring.tables import METRIC_FORMATS, MISSING, format_p

REFERENCE = "main"
#: The mean test scores the tables of trained networks show.
SCORES = ("psnr", "ssim", "lpips")
#: The maps every network is scored on (``run_metrics``' ``split`` column) and the prefix of their columns in
#: :func:`ablation_table`: the synthetic test split, and maps synthesised from real anatomy when configured.
SPLITS = {"test": "", "real": "real_"}
_COMPARED = ("psnr_difference", "p_subjects", "n_subjects")
#: Ablations that answer one claim of the paper each: the variant without the part, and the claim.
CLAIMS = {
    "no_guide": "the FLAIR guide helps",
    "no_gdfn": "the GDFN helps",
    "pairs4": "eight HFAB pairs beat four",
    "bilinear_skip": "the k-space global skip beats a bilinear one",
}
REAL_NOT_RUN = (
    "The networks were not scored on real anatomy: the evaluation's real-anatomy split is not configured. "
    "To run it, point the evaluation at real cases and run both stages again, e.g. "
    "`mrsisr run --stage evaluation --stage beyond --set real_eval_root=/path/to/BraTS`."
)


def _maps(run_metrics: pd.DataFrame, variant: str, seed: int) -> pd.DataFrame:
    chosen = run_metrics[(run_metrics["variant"] == variant) & (run_metrics["seed"] == seed)]
    return chosen.sort_values(["subject", "kind", "slice"]).reset_index(drop=True)


def has_split(table: pd.DataFrame, split: str) -> bool:
    """True when :func:`ablation_table` ``table`` holds the networks' scores on ``split``."""
    return f"{SPLITS[split]}psnr_difference" in table.columns


def ablation_table(runs: pd.DataFrame, run_metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per variant (its first seed): scores, size, training time, and the difference from ``main``.

    Parameters
    ----------
    runs : DataFrame
        One row per trained network (``variant, seed, description, n_params, epochs_run, seconds,
        stopped_by_budget, psnr, ssim, lpips``: the mean scores on the test split).
    run_metrics : DataFrame
        Per scored map and trained network (``variant, seed, split, subject, kind, slice`` and the metrics);
        ``split`` is a key of :data:`SPLITS`.

    Returns
    -------
    DataFrame
        ``runs``' columns plus, for the test split, ``psnr_difference`` (variant minus main, dB; NaN without a
        main run), ``p_subjects``, ``n_subjects`` and ``psnr_seed_sd`` (SD of main's mean PSNR over its seeds;
        NaN with one); when ``run_metrics`` holds real-anatomy maps, the same prefixed ``real_`` and the mean
        ``real_psnr, real_ssim, real_lpips``.
    """
    table = runs.sort_values("seed", kind="stable").groupby("variant", sort=False).head(1).reset_index(drop=True)
    for split, prefix in SPLITS.items():
        maps = run_metrics[run_metrics["split"] == split]
        if prefix and maps.empty:
            continue
        compared = _compare(table, maps, with_means=bool(prefix))
        table = pd.concat([table, compared.add_prefix(prefix)], axis=1)
    return table


def _compare(first: pd.DataFrame, maps: pd.DataFrame, with_means: bool) -> pd.DataFrame:
    """Per row of ``first``: (the mean scores,) the difference from main with its subject-level test, seed SD."""
    has_reference = REFERENCE in set(first["variant"])
    rows = []
    for variant, seed in zip(first["variant"], first["seed"], strict=True):
        ours = _maps(maps, variant, seed)
        row = {name: float(ours[name].mean()) for name in SCORES} if with_means else {}
        row |= {"psnr_difference": np.nan, "p_subjects": np.nan, "n_subjects": int(ours["subject"].nunique())}
        if has_reference and variant == REFERENCE:
            row["psnr_difference"] = 0.0
        elif has_reference:
            reference = _maps(maps, REFERENCE, seed)
            test = subject_level_test(ours["psnr"].to_numpy(), reference["psnr"].to_numpy(), ours["subject"].to_numpy())
            row |= {"psnr_difference": test.mean_difference, "p_subjects": test.p_value}
        rows.append(row)
    compared = pd.DataFrame(rows, index=first.index, columns=[*(SCORES if with_means else ()), *_COMPARED])
    seeds = maps[maps["variant"] == REFERENCE].groupby("seed")["psnr"].mean() if has_reference else []
    compared["psnr_seed_sd"] = float(seeds.std()) if len(seeds) > 1 else np.nan
    return compared


def _training(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """The display columns of a network's size and training."""
    return {
        "Parameters": frame["n_params"].map("{:,}".format),
        "Epochs": frame["epochs_run"],
        "Minutes": (frame["seconds"] / 60).map("{:.1f}".format),
    }


def _scores(frame: pd.DataFrame, prefix: str = "") -> dict[str, pd.Series]:
    """The display columns of the mean scores (``<prefix>psnr`` ...)."""
    return {METRIC_FORMATS[name].header: frame[prefix + name].map(METRIC_FORMATS[name].value) for name in SCORES}


def ablation_display(table: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """:func:`ablation_table` for reading, on one split: plain headers, rounded values, "-" for missing.

    ``split="test"`` shows each network's size and training beside its test scores; ``split="real"`` its
    scores on real anatomy, or, when those were not run, no row and :data:`REAL_NOT_RUN` as the caption. The
    caption is in ``attrs``.
    """
    prefix = SPLITS[split]
    if not has_split(table, split):
        shown = pd.DataFrame(columns=["Network"]).set_index("Network")
        shown.attrs["caption"] = REAL_NOT_RUN
        return shown
    shown = pd.DataFrame(
        {"Network": table["variant"]}
        | (_training(table) if split == "test" else {})
        | _scores(table, prefix)
        | {
            "PSNR minus main (dB)": table[f"{prefix}psnr_difference"].map(
                lambda v: MISSING if np.isnan(v) else f"{v:+.2f}"
            ),
            "p (subjects)": table[f"{prefix}p_subjects"].map(format_p),
            "Subjects": table[f"{prefix}n_subjects"],
        }
    ).set_index("Network")
    sd = float(table[f"{prefix}psnr_seed_sd"].iloc[0]) if len(table) else np.nan
    spread = f"{sd:.2f} dB" if np.isfinite(sd) else "not measured (one seed)"
    maps = (
        "Mean test scores"
        if split == "test"
        else "Mean scores on maps synthesised from real glioma anatomy (the real FLAIR as guide)"
    )
    shown.attrs["caption"] = (
        f"{maps} of every network trained with the same recipe, epochs and budget; "
        "p: two-sided Wilcoxon signed-rank test over subjects against main (same seed). "
        f"SD of main's mean PSNR over seeds: {spread}."
    )
    return shown


def runs_display(runs: pd.DataFrame) -> pd.DataFrame:
    """Every trained network (the study's network once per seed) for reading: plain headers, rounded values."""
    shown = pd.DataFrame(
        {"Network": runs["variant"], "Seed": runs["seed"]}
        | _training(runs)
        | _scores(runs)
        | {"Stopped by the budget": runs["stopped_by_budget"].map({True: "yes", False: "no"})}
    ).set_index(["Network", "Seed"])
    shown.attrs["caption"] = "Every trained network: size, training, and mean scores on the test maps."
    return shown


def claim_sentences(table: pd.DataFrame, split: str = "test") -> list[str]:
    """One sentence per ablation of :data:`CLAIMS` present in ``table``: what removing the part did on ``split``.

    A difference counts as support when removing the part lowers the mean PSNR by more than main's seed SD
    (or, with one seed, by any amount) and the subject-level p is below 0.05. No sentence when ``table`` has
    no scores on ``split``.
    """
    if table.empty or not has_split(table, split):
        return []
    prefix = SPLITS[split]
    rows = table.set_index("variant")
    sd = float(table[f"{prefix}psnr_seed_sd"].iloc[0])
    where = "" if split == "test" else " on real anatomy"
    sentences = []
    for variant, claim in CLAIMS.items():
        if variant not in rows.index or not np.isfinite(rows.loc[variant, f"{prefix}psnr_difference"]):
            continue
        difference = float(rows.loc[variant, f"{prefix}psnr_difference"])
        p = float(rows.loc[variant, f"{prefix}p_subjects"])
        beyond_noise = -difference > (sd if np.isfinite(sd) else 0.0)
        supported = beyond_noise and p < 0.05
        verdict = "supported" if supported else "not supported at this budget"
        sentences.append(
            f"'{claim}'{where}: {verdict} — {variant} differs from main by {difference:+.2f} dB mean PSNR "
            f"(p = {format_p(p)} over {int(rows.loc[variant, f'{prefix}n_subjects'])} subjects"
            + (f"; seed SD {sd:.2f} dB)." if np.isfinite(sd) else "; seed noise not measured).")
        )
    return sentences
