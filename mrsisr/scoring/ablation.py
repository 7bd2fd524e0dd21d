"""The comparison of trained networks in notebook 06: each variant against the study's network, with seed noise.

Each variant is trained once at the study's seed; the study's network (``main``) also at further seeds. A
variant's difference from ``main`` is its mean minus main's (same seed), tested at the level of subjects
(:func:`mrsisr.scoring.stats.subject_level_test`); the SD of main's mean PSNR over its seeds says how large a
difference seed noise alone makes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mrsisr.scoring.stats import subject_level_test
from mrsisr.scoring.tables import METRIC_FORMATS, MISSING, format_p

REFERENCE = "main"
#: The mean test scores the tables of trained networks show.
SCORES = ("psnr", "ssim", "lpips")
#: Ablations that answer one claim of the paper each: the variant without the part, and the claim.
CLAIMS = {
    "no_guide": "the FLAIR guide helps",
    "no_gdfn": "the GDFN helps",
    "pairs4": "eight HFAB pairs beat four",
    "bilinear_skip": "the k-space global skip beats a bilinear one",
}


def _maps(run_metrics: pd.DataFrame, variant: str, seed: int) -> pd.DataFrame:
    chosen = run_metrics[(run_metrics["variant"] == variant) & (run_metrics["seed"] == seed)]
    return chosen.sort_values(["subject", "kind", "slice"]).reset_index(drop=True)


def ablation_table(runs: pd.DataFrame, run_metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per variant (its first seed): scores, size, training time, and the difference from ``main``.

    Parameters
    ----------
    runs : DataFrame
        One row per trained network (``variant, seed, description, n_params, epochs_run, seconds,
        stopped_by_budget, psnr, ssim, lpips``).
    run_metrics : DataFrame
        Per test map and trained network (``variant, seed, subject, kind, slice`` and the metrics).

    Returns
    -------
    DataFrame
        ``runs``' columns plus ``psnr_difference`` (variant minus main, dB; NaN without a main run),
        ``p_subjects``, ``n_subjects`` and ``psnr_seed_sd`` (SD of main's mean PSNR over its seeds; NaN with one).
    """
    first = runs.sort_values("seed", kind="stable").groupby("variant", sort=False).head(1)
    has_reference = REFERENCE in set(runs["variant"])
    rows = []
    for _, run in first.iterrows():
        row = run.to_dict()
        ours = _maps(run_metrics, run["variant"], run["seed"])
        row |= {"psnr_difference": np.nan, "p_subjects": np.nan, "n_subjects": int(ours["subject"].nunique())}
        if has_reference and run["variant"] == REFERENCE:
            row["psnr_difference"] = 0.0
        elif has_reference:
            reference = _maps(run_metrics, REFERENCE, run["seed"])
            test = subject_level_test(ours["psnr"].to_numpy(), reference["psnr"].to_numpy(), ours["subject"].to_numpy())
            row |= {"psnr_difference": test.mean_difference, "p_subjects": test.p_value}
        rows.append(row)
    table = pd.DataFrame(rows).reset_index(drop=True)
    seeds = runs.loc[runs["variant"] == REFERENCE, "psnr"]
    table["psnr_seed_sd"] = float(seeds.std()) if len(seeds) > 1 else np.nan
    return table


def _training_and_scores(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """The display columns shared by the tables of trained networks: size, training, mean test scores."""
    columns = {
        "Parameters": frame["n_params"].map("{:,}".format),
        "Epochs": frame["epochs_run"],
        "Minutes": (frame["seconds"] / 60).map("{:.1f}".format),
    }
    return columns | {METRIC_FORMATS[name].header: frame[name].map(METRIC_FORMATS[name].value) for name in SCORES}


def ablation_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`ablation_table` for reading: plain headers, rounded values, "-" for missing; caption in ``attrs``."""
    shown = pd.DataFrame(
        {"Network": table["variant"]}
        | _training_and_scores(table)
        | {
            "PSNR minus main (dB)": table["psnr_difference"].map(lambda v: MISSING if np.isnan(v) else f"{v:+.2f}"),
            "p (subjects)": table["p_subjects"].map(format_p),
            "Subjects": table["n_subjects"],
        }
    ).set_index("Network")
    sd = float(table["psnr_seed_sd"].iloc[0]) if len(table) else np.nan
    spread = f"{sd:.2f} dB" if np.isfinite(sd) else "not measured (one seed)"
    shown.attrs["caption"] = (
        "Mean test scores of every network trained with the same recipe, epochs and budget; "
        "p: two-sided Wilcoxon signed-rank test over subjects against main (same seed). "
        f"SD of main's mean PSNR over seeds: {spread}."
    )
    return shown


def runs_display(runs: pd.DataFrame) -> pd.DataFrame:
    """Every trained network (the study's network once per seed) for reading: plain headers, rounded values."""
    shown = pd.DataFrame(
        {"Network": runs["variant"], "Seed": runs["seed"]}
        | _training_and_scores(runs)
        | {"Stopped by the budget": runs["stopped_by_budget"].map({True: "yes", False: "no"})}
    ).set_index(["Network", "Seed"])
    shown.attrs["caption"] = "Every trained network: size, training, and mean scores on the test maps."
    return shown


def claim_sentences(table: pd.DataFrame) -> list[str]:
    """One sentence per ablation of :data:`CLAIMS` present in ``table``: what removing the part did, in words.

    A difference counts as support when removing the part lowers the mean PSNR by more than main's seed SD
    (or, with one seed, by any amount) and the subject-level p is below 0.05.
    """
    if table.empty:
        return []
    rows = table.set_index("variant")
    sd = float(table["psnr_seed_sd"].iloc[0])
    sentences = []
    for variant, claim in CLAIMS.items():
        if variant not in rows.index or not np.isfinite(rows.loc[variant, "psnr_difference"]):
            continue
        difference, p = float(rows.loc[variant, "psnr_difference"]), float(rows.loc[variant, "p_subjects"])
        beyond_noise = -difference > (sd if np.isfinite(sd) else 0.0)
        supported = beyond_noise and p < 0.05
        verdict = "supported" if supported else "not supported at this budget"
        sentences.append(
            f"'{claim}': {verdict} — {variant} differs from main by {difference:+.2f} dB mean PSNR "
            f"(p = {format_p(p)} over {int(rows.loc[variant, 'n_subjects'])} subjects"
            + (f"; seed SD {sd:.2f} dB)." if np.isfinite(sd) else "; seed noise not measured).")
        )
    return sentences
