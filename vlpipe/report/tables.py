"""Result tables: our runs (mean ± std over seeds) beside the paper's numbers.

Every run's ``metrics.json`` holds ``experiment, variant, seed, dataset, n_test, weights`` and the
test metrics per direction. The report writes, per experiment:
``<name>.md`` (tables + provenance notes), ``<name>.tex`` (booktabs) and ``<name>.csv``
(long format: one row per source, model, direction and metric, with mean, std and seeds).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vlpipe.atomic import write_text
from vlpipe.report.paper import PAPER_TABLES, RETRIEVAL_METRICS

DIRECTIONS = {"t2v": "text → video", "v2t": "video → text"}


def runs_frame(runs: Sequence[dict]) -> pd.DataFrame:
    """One row per (run, direction, metric) with its value."""
    rows = []
    for run in runs:
        for direction, metrics in run["test"].items():
            for metric, value in metrics.items():
                rows.append({"variant": run["variant"], "seed": run["seed"],
                             "direction": direction, "metric": metric, "value": value})
    return pd.DataFrame(rows)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof=1; 0 for one seed) and seed count per (variant, direction, metric)."""
    grouped = runs.groupby(["variant", "direction", "metric"], sort=False)["value"]
    summary = grouped.agg(mean="mean", std="std", seeds="count").reset_index()
    summary["std"] = summary["std"].fillna(0.0)
    return summary


def _mean_std(mean: float, std: float, seeds: int) -> str:
    return f"{mean:.1f}" if seeds == 1 else f"{mean:.1f} ± {std:.1f}"


def _paper_cell(value: float, metric: str) -> str:
    if pd.isna(value):
        return ""
    return f"{value:g}" if metric == "MedR" else f"{value:.1f}"


def retrieval_table(summary: pd.DataFrame, ours_label: str, direction: str = "t2v",
                    with_paper: bool = True) -> pd.DataFrame:
    """Rows = models (the paper's, then ours); columns = (source, metric)."""
    ours = summary[summary["direction"] == direction]
    cells = {(variant, metric): _mean_std(r.mean, r.std, r.seeds)
             for variant, metric, r in zip(ours["variant"], ours["metric"], ours.itertuples(),
                                           strict=True)}
    variants = list(dict.fromkeys(ours["variant"]))
    paper = PAPER_TABLES["retrieval"]() if with_paper else pd.DataFrame()
    models = list(paper.index) + [v for v in variants if v not in paper.index]
    table = pd.DataFrame(index=pd.Index(models, name="model"))
    for column in paper.columns:
        table[column] = [_paper_cell(v, column[1]) for v in paper[column].reindex(models)]
    for metric in RETRIEVAL_METRICS:
        table[(ours_label, metric)] = [cells.get((m, metric), "") for m in models]
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def _markdown(table: pd.DataFrame) -> str:
    header = ["model", *(f"{source} {metric}" for source, metric in table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([model, *row]) + " |"
              for model, row in zip(table.index, table.to_numpy().tolist(), strict=True)]
    return "\n".join(lines)


def _latex(table: pd.DataFrame, caption: str) -> str:
    escaped = table.rename(index=lambda m: m.replace("_", r"\_")).rename_axis(None)
    escaped = escaped.map(lambda cell: cell.replace("±", r"$\pm$"))
    caption = caption.replace("→", r"$\rightarrow$").replace("_", r"\_")
    return escaped.style.to_latex(hrules=True, caption=caption, multicol_align="c",
                                  position="t") + "\n"


def write_report(metric_files: Sequence[str | Path], out_dir: str | Path, name: str,
                 config: dict) -> dict[str, Path]:
    """Write ``name``.{md,tex,csv} under ``out_dir`` from the runs' metrics files; ``config``
    (the experiment and data set settings) is printed with the provenance notes."""
    out_dir = Path(out_dir)
    runs = [json.loads(Path(path).read_text()) for path in metric_files]
    summary = summarise(runs_frame(runs))
    dataset, n_test = runs[0]["dataset"], runs[0]["n_test"]
    seeds = sorted({run["seed"] for run in runs})
    label = f"Ours {dataset}"
    md = [f"# {name}: retrieval on {dataset}", "",
          f"Test: {n_test} clips, one sentence each; chance R@1 = {100 / n_test:.2f}%, "
          f"chance MedR ≈ {(n_test + 1) / 2:.0f}. Ours: mean ± std over seeds {seeds}. "
          "Paper: JSFusion (ECCV 2018) on LSMDC / MSR-VTT 1k.", ""]
    tex = []
    for direction, title in DIRECTIONS.items():
        table = retrieval_table(summary, label, direction, with_paper=direction == "t2v")
        md += [f"## {title}", "", _markdown(table), ""]
        tex.append(_latex(table, f"{name}: {title} retrieval, {dataset}"))
    md += ["## Provenance", ""]
    md += [f"- features `{f['extractor']}`: weights **{f['weights']}**"
           + ("" if f["pretrained"] else " — seeded RANDOM initialisation, not pretrained")
           for f in {f["extractor"]: f for run in runs for f in run["features"]}.values()]
    md += [f"- {key}: `{json.dumps(value)}`" for key, value in config.items()]
    paths = {ext: out_dir / f"{name}.{ext}" for ext in ("md", "tex", "csv")}
    write_text(paths["md"], "\n".join(md) + "\n")
    write_text(paths["tex"], "\n".join(tex))
    write_text(paths["csv"], _long_csv(summary, dataset))
    return paths


def _long_csv(summary: pd.DataFrame, dataset: str) -> str:
    ours = summary.assign(source="ours", dataset=dataset)
    paper = PAPER_TABLES["retrieval"]().stack(level=[0, 1], future_stack=True).rename("mean")
    paper = paper.reset_index().set_axis(["variant", "source", "metric", "mean"], axis=1)
    paper = paper.assign(dataset=paper["source"].str.removeprefix("Paper "), source="paper",
                         direction="t2v", std=np.nan, seeds=np.nan)
    columns = ["source", "dataset", "variant", "direction", "metric", "mean", "std", "seeds"]
    return pd.concat([ours[columns], paper[columns]]).to_csv(index=False)
