"""Result tables: our runs (mean ± std over seeds) beside the paper's numbers.

Every run's ``metrics.json`` holds ``experiment, variant, seed, dataset, n_test, features``, its
``task`` (``retrieval`` when absent, ``multiple_choice``, ``fill_in_blank``, ``correspondence``
or ``captioning``) and the test metrics per direction (``t2v``/``v2t``, ``mc``, ``fib`` or
``caption``). The report writes, per experiment: ``<name>.md`` (tables + provenance notes),
``<name>.tex`` (booktabs) and ``<name>.csv`` (long format: one row per source, model, direction
and metric, with mean, std and seeds).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vlpipe.atomic import write_text
from vlpipe.provenance import describe_code
from vlpipe.report.examples import examples_markdown
from vlpipe.report.paper import paper_table
from vlpipe.tasks.specs import task_spec


def run_task(runs: Sequence[dict]) -> str:
    """The one task of ``runs`` (files without a ``task`` key are retrieval)."""
    tasks = {run.get("task", "retrieval") for run in runs}
    if len(tasks) != 1:
        raise ValueError(f"one report needs runs of one task, got {sorted(tasks)}")
    return tasks.pop()


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


def _mean_std(mean: float, std: float, seeds: int, decimals: int = 1) -> str:
    return (f"{mean:.{decimals}f}" if seeds == 1
            else f"{mean:.{decimals}f} ± {std:.{decimals}f}")


def _paper_cell(value: float, metric: str) -> str:
    """The published precision, at least one decimal except for ranks."""
    if pd.isna(value):
        return ""
    text = f"{value:g}"
    return text if metric == "MedR" or "." in text else f"{value:.1f}"


def result_table(summary: pd.DataFrame, task: str, ours_label: str,
                 direction: str) -> pd.DataFrame:
    """Rows = models (the paper's, then ours); columns = (source, metric): the paper's numbers
    for `direction` (none where it has no table for it), then ours."""
    ours = summary[summary["direction"] == direction]
    decimals = task_spec(task).decimals
    cells = {(r.variant, r.metric): _mean_std(r.mean, r.std, r.seeds, decimals)
             for r in ours.itertuples()}
    variants = list(dict.fromkeys(ours["variant"]))
    paper = paper_table(task, direction)
    models = list(paper.index) + [v for v in variants if v not in paper.index]
    table = pd.DataFrame(index=pd.Index(models, name="model"))
    for column in paper.columns:
        table[column] = [_paper_cell(v, column[1]) for v in paper[column].reindex(models)]
    for metric in task_spec(task).metrics:
        table[(ours_label, metric)] = [cells.get((m, metric), "") for m in models]
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def measured_table(summary: pd.DataFrame, ours_label: str, direction: str,
                   decimals: int) -> pd.DataFrame:
    """Ours only, for a ``direction`` the runs measure beyond the task's sections (CT-SAN's
    concept detection): rows = variants, columns = every metric any run reports there."""
    ours = summary[summary["direction"] == direction]
    cells = {(r.variant, r.metric): _mean_std(r.mean, r.std, r.seeds, decimals)
             for r in ours.itertuples()}
    variants = list(dict.fromkeys(ours["variant"]))
    table = pd.DataFrame(index=pd.Index(variants, name="model"))
    for metric in dict.fromkeys(ours["metric"]):
        table[(ours_label, metric)] = [cells.get((v, metric), "") for v in variants]
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def _markdown(table: pd.DataFrame) -> str:
    header = ["model", *(f"{source} {metric}" for source, metric in table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([model, *row]) + " |"
              for model, row in zip(table.index, table.to_numpy().tolist(), strict=True)]
    return "\n".join(lines)


def _latex(table: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table float, centred, with `caption` and `\\label{label}`."""
    escaped = table.rename(index=lambda m: m.replace("_", r"\_")).rename_axis(None)
    escaped = escaped.map(lambda cell: cell.replace("±", r"$\pm$"))
    caption = caption.replace("→", r"$\rightarrow$").replace("_", r"\_").replace("%", r"\%")
    return escaped.style.to_latex(hrules=True, caption=caption, label=label,
                                  multicol_align="c", position="t",
                                  position_float="centering") + "\n"


def _run_codes(run: dict) -> dict[str, dict | None]:
    """The code identities of one run: its training, its evaluation and each store it read."""
    codes = run.get("code") or {}
    return {"training": codes.get("train"), "evaluation": codes.get("evaluate"),
            **{f"features `{f['extractor']}`": f.get("code") for f in run["features"]}}


def language_model_lines(runs: Sequence[dict]) -> list[str]:
    """Provenance lines: each variant's language model, from published weights or trained from
    scratch (the report must not pass the one off as the other)."""
    models = {run["variant"]: run["language_model"] for run in runs if run.get("language_model")}
    return [f"- `{variant}` generates with {model['name']} "
            + (f"started from the weights of `{model['weights']}`" if model["weights"]
               else "trained from scratch on the training sentences (no pretrained weights)")
            for variant, model in models.items()]


def code_lines(runs: Sequence[dict]) -> list[str]:
    """Provenance lines: the code that made the table's runs, and a warning naming the runs
    when they were made by different code (or some did not record theirs)."""
    codes = [_run_codes(run) for run in runs]
    made_by = sorted({describe_code(c) if c else "unrecorded code"
                      for run_codes in codes for c in run_codes.values()})
    lines = [f"- code: {', '.join(made_by)}"]
    for step in dict.fromkeys(step for run_codes in codes for step in run_codes):
        groups: dict[str, list[str]] = {}
        for run, run_codes in zip(runs, codes, strict=True):
            if step not in run_codes:  # e.g. a variant that reads fewer stores
                continue
            code = run_codes[step]
            key = code["step_fingerprint"] if code else "unrecorded"
            groups.setdefault(key, []).append(f"{run['variant']}/seed {run['seed']}")
        if len(groups) > 1:
            lines.append(f"- **MIXED CODE** in {step}: the runs of this table were made by "
                         "different code (rerun them with the current code to compare them): "
                         + "; ".join(f"`{key}`: {', '.join(names)}"
                                     for key, names in groups.items()))
    return lines


def write_report(metric_files: Sequence[str | Path], out_dir: str | Path, name: str,
                 config: dict) -> dict[str, Path]:
    """Write ``name``.{md,tex,csv} under ``out_dir`` from the runs' metrics files (all of one
    task); ``config`` (the experiment and data set settings) is printed with the provenance."""
    out_dir = Path(out_dir)
    runs = [json.loads(Path(path).read_text()) for path in metric_files]
    task_name = run_task(runs)
    task = task_spec(task_name)
    summary = summarise(runs_frame(runs))
    dataset = runs[0]["dataset"]
    seeds = sorted({run["seed"] for run in runs})
    label = f"Ours {dataset}"
    md = [f"# {name}: {task.title} on {dataset}", "",
          f"{task.describe(runs[0])} Ours: mean ± std over seeds {seeds}. "
          f"Paper: {task.paper}.", ""]
    tex = []
    for direction, heading in task.sections.items():
        table = result_table(summary, task_name, label, direction)
        md += [f"## {heading}", "", _markdown(table), ""]
        tex.append(_latex(table, f"{name}: {task.caption.format(heading=heading)}, {dataset}",
                          f"tab:{name}-{direction}"))
    for direction in dict.fromkeys(summary["direction"]):
        if direction not in task.sections:  # measured by some runs, published by no paper
            table = measured_table(summary, label, direction, task.decimals)
            md += [f"## {direction} (ours only)", "", _markdown(table), ""]
            tex.append(_latex(table, f"{name}: {direction}, {dataset}",
                              f"tab:{name}-{direction}"))
    if task.example_figure != "maps":  # maps are drawn by `examples_figure` only
        md += examples_markdown(runs)
    md += ["## Provenance", ""]
    md += [f"- features `{f['extractor']}`: weights **{f['weights']}**"
           + (" — seeded RANDOM initialisation, not pretrained" if f["pretrained"] is False
              else "")
           for f in {f["extractor"]: f for run in runs for f in run["features"]}.values()]
    md += language_model_lines(runs)
    md += code_lines(runs)
    md += [f"- {key}: `{json.dumps(value)}`" for key, value in config.items()]
    paths = {ext: out_dir / f"{name}.{ext}" for ext in ("md", "tex", "csv")}
    write_text(paths["md"], "\n".join(md) + "\n")
    write_text(paths["tex"], "\n".join(tex))
    write_text(paths["csv"], _long_csv(summary, task_name, dataset))
    return paths


def _paper_long(task: str, direction: str) -> pd.DataFrame:
    """The paper's numbers for `direction`, one row per (model, dataset, metric) it reports
    (a model evaluated on one data set only has no rows for the other)."""
    paper = paper_table(task, direction).stack(level=[0, 1], future_stack=True).rename("mean")
    paper = paper.dropna()
    paper = paper.reset_index().set_axis(["variant", "source", "metric", "mean"], axis=1)
    return paper.assign(dataset=paper["source"].str.removeprefix("Paper "), source="paper",
                        direction=direction, std=np.nan, seeds=np.nan)


def _long_csv(summary: pd.DataFrame, task: str, dataset: str) -> str:
    """Ours, then the paper's rows of every direction it publishes (in section order)."""
    columns = ["source", "dataset", "variant", "direction", "metric", "mean", "std", "seeds"]
    ours = summary.assign(source="ours", dataset=dataset)
    papers = [_paper_long(task, direction)[columns] for direction in task_spec(task).sections]
    return pd.concat([ours[columns], *(p for p in papers if not p.empty)]).to_csv(index=False)
