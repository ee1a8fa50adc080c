"""The test examples a run's evaluation keeps (`Task.examples`), shown in the report: each
variant's output from its lowest seed's run beside the truth. Captioning: decoded captions and
their references, as Markdown under the table; gaze: true and predicted maps, as a figure."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vlpipe.atomic import atomic_path


def shown_runs(runs: Sequence[dict]) -> dict[str, dict]:
    """variant → its lowest seed's run among those that hold examples (variants in the runs'
    order)."""
    shown: dict[str, dict] = {}
    for run in sorted(runs, key=lambda run: run["seed"]):
        if run.get("examples"):
            shown.setdefault(run["variant"], run)
    return {run["variant"]: shown[run["variant"]] for run in runs if run["variant"] in shown}


def examples_markdown(runs: Sequence[dict]) -> list[str]:
    """Captioning examples (what the model decoded beside the references) as Markdown: one
    block per test clip with a row per variant, then each variant's detected concepts where it
    has them (CT-SAN), those in the clip's captions in bold; no lines when no run holds
    examples."""
    shown = shown_runs(runs)
    if not shown:
        return []
    decoded = {variant: {ex["clip_id"]: ex["decoded"] for ex in run["examples"]}
               for variant, run in shown.items()}
    items = {ex["clip_id"]: ex["references"] for run in shown.values() for ex in run["examples"]}
    lines = ["## Examples: decoded test captions", "",
             "Each model's output from its lowest seed's run: "
             + ", ".join(f"{variant} seed {run['seed']}" for variant, run in shown.items())
             + ".", ""]
    concepts = {variant: {ex["clip_id"]: ex["concepts"] for ex in run["examples"]
                          if "concepts" in ex} for variant, run in shown.items()}
    for clip_id, references in items.items():
        lines += [f"**{clip_id}** — references: " + "; ".join(f"“{r}”" for r in references), "",
                  "| model | decoded |", "|---|---|"]
        lines += [f"| {variant} | {captions.get(clip_id, '')} |"
                  for variant, captions in decoded.items()]
        lines.append("")
        for variant, found in concepts.items():
            if clip_id in found:
                words = [f"**{c['word']}**" if c["correct"] else c["word"]
                         for c in found[clip_id]]
                lines += [f"{variant}'s top {len(words)} detected concepts (**bold**: in the "
                          "clip's captions): " + " · ".join(words), ""]
    return lines


def plot_gaze_examples(runs: Sequence[dict], out: str | Path, title: str) -> None:
    """Gaze examples as a PNG: per test clip a row of true maps over its example steps and
    under it a row per variant's predicted maps (each map scaled to its own maximum)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    shown = shown_runs(runs)
    if not shown:
        raise ValueError(f"{title}: no run holds gaze examples (evaluate with today's code)")
    first = next(iter(shown.values()))["examples"]
    rows = [row for clip in first for row in
            [(clip["clip_id"], "truth", clip["truth"], clip["steps"])]
            + [(clip["clip_id"], variant, _predicted(run, clip["clip_id"]), clip["steps"])
               for variant, run in shown.items()]]
    columns = max(len(steps) for *_, steps in rows)
    figure, axes = plt.subplots(len(rows), columns, figsize=(1.8 * columns, 1.8 * len(rows)),
                                squeeze=False, layout="constrained")
    for row, (clip_id, label, maps, steps) in enumerate(rows):
        for column, axis in enumerate(axes[row]):
            axis.set(xticks=[], yticks=[])
            if column < len(maps):
                axis.imshow(np.asarray(maps[column]), cmap="magma", vmin=0, vmax=255)
            if label == "truth":
                axis.set_title(f"{clip_id} step {steps[column]}" if column < len(steps) else "",
                               fontsize="small")
        axes[row][0].set_ylabel(label, fontsize="small")
    seeds = ", ".join(f"{variant} seed {run['seed']}" for variant, run in shown.items())
    heading = f"{title}: true and predicted gaze maps ({seeds})"
    figure.suptitle(textwrap.fill(heading, width=18 * columns), fontsize="medium")  # fits the width
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


def _predicted(run: dict, clip_id: str) -> list:
    """The run's predicted maps of a clip."""
    for clip in run["examples"]:
        if clip["clip_id"] == clip_id:
            return clip["predicted"]
    raise ValueError(f"{run['variant']} seed {run['seed']}: no example of clip {clip_id!r}")
