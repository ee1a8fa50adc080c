"""Training curves of an experiment: training loss, the validation model-selection score and
any statistics the model logs per epoch (``train_stats``, e.g. WAL's share of pairs its
discriminator lets into the LVC loss), one line per variant (mean over seeds) with the seeds'
min-max as a band.

Reads the ``train_log.jsonl`` each training run writes (one JSON object per epoch with
``epoch``, ``loss``, ``selection`` and optionally ``train_stats``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from vlpipe.atomic import atomic_path

CURVES = {"loss": "training loss", "selection": "validation: {selection}"}
STAT_LABELS = {"lvc_fraction": "pairs in the LVC loss (z = 0)"}  # else the statistic's name


def read_train_log(path: str | Path) -> pd.DataFrame:
    """One training run's log → (epoch, loss, selection, its train_stats) per epoch; a bad line
    is an error naming the file and line."""
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        try:
            entry = json.loads(line)
            rows.append({"epoch": int(entry["epoch"]), "loss": float(entry["loss"]),
                         "selection": float(entry["selection"]),
                         **{k: float(v) for k, v in entry.get("train_stats", {}).items()}})
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{number}: not a training-log entry ({error})") from error
    if not rows:
        raise ValueError(f"{path}: no epochs logged")
    return pd.DataFrame(rows)


def curves_frame(runs: Mapping[str, Sequence[str | Path]]) -> pd.DataFrame:
    """Per (variant, epoch), in the variants' order: mean, min and max over the variant's runs
    of loss, selection and each logged statistic (NaN for variants that do not log it), and the
    number of runs that reached the epoch."""
    logs = [read_train_log(path).assign(variant=variant)
            for variant, paths in runs.items() for path in paths]
    frame = pd.concat(logs, ignore_index=True)
    curves = [c for c in frame.columns if c not in ("epoch", "variant")]  # CURVES, then stats
    stats = frame.groupby(["variant", "epoch"], sort=False)[curves].agg(["mean", "min", "max"])
    stats.columns = [f"{curve}_{stat}" for curve, stat in stats.columns]
    runs_per_epoch = frame.groupby(["variant", "epoch"], sort=False).size().rename("runs")
    return stats.join(runs_per_epoch).reset_index()


def plot_training_curves(runs: Mapping[str, Sequence[str | Path]], out: str | Path, title: str,
                         selection: str) -> pd.DataFrame:
    """Draw the curves of `runs` (variant → its runs' train_log.jsonl paths) into the PNG
    `out`; `selection` names the validation score. Returns the plotted `curves_frame`."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    frame = curves_frame(runs)
    logged = [c.removesuffix("_mean") for c in frame.columns if c.endswith("_mean")]
    curves = {**CURVES, **{stat: STAT_LABELS.get(stat, stat) for stat in logged
                           if stat not in CURVES}}
    figure, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4),
                                layout="constrained")
    for axis, (curve, label) in zip(axes, curves.items(), strict=True):
        for variant, group in frame.groupby("variant", sort=False):
            line, = axis.plot(group["epoch"], group[f"{curve}_mean"], label=variant)
            axis.fill_between(group["epoch"], group[f"{curve}_min"], group[f"{curve}_max"],
                              color=line.get_color(), alpha=0.15, linewidth=0)
        axis.set(title=label.format(selection=selection), xlabel="epoch")
        axis.grid(alpha=0.3)
    axes[-1].legend(fontsize="small", loc="best")
    seeds = frame.groupby("variant")["runs"].max()  # runs per variant
    counts = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}–{seeds.max()}"
    figure.suptitle(f"{title}: mean over seeds ({counts} per variant), band min–max")
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
    return frame
