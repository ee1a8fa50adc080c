"""The test examples a run's evaluation keeps (`Task.examples`), shown in the report: each
variant's output from its lowest seed's run beside the truth. Captioning: decoded captions and
their references, as Markdown under the table, and as a figure beside each clip's middle frame
with the detected concepts (CT-SAN's concept figure); gaze: true and predicted maps, as a
figure; Fill in the Characters: the sets' sentences filled in, as Markdown, and their frames
with the labelled tracks, as a figure. What a task draws is its spec's ``example_figure``."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vlpipe.atomic import atomic_path
from vlpipe.tasks.specs import task_spec

FRAME_SIZE = 224  # px, the longer side of a clip's frame in the captions figure


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
    if any("set_id" in ex for run in shown.values() for ex in run["examples"]):
        return _sets_markdown(shown, SET_HEADINGS[runs[0]["task"]])
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


SET_HEADINGS = {"storytelling": "decoded test stories",
                "fill_in_characters": "test sets with their characters filled in"}


def _sets_markdown(shown: dict[str, dict], heading: str) -> list[str]:
    """Examples of sets of clips (storytelling, Fill in the Characters): per test set a table
    of its clips, the reference sentence and each variant's output."""
    lines = [f"## Examples: {heading}", "",
             "Each model's output from its lowest seed's run: "
             + ", ".join(f"{variant} seed {run['seed']}" for variant, run in shown.items())
             + ".", ""]
    decoded = {variant: {ex["set_id"]: ex["decoded"] for ex in run["examples"]}
               for variant, run in shown.items()}
    stories = {ex["set_id"]: ex for run in shown.values() for ex in run["examples"]}
    for set_id, story in stories.items():
        lines += [f"**{set_id}**", "", "| clip | reference | "
                  + " | ".join(decoded) + " |", "|---|---|" + "---|" * len(decoded)]
        for k, (clip_id, reference) in enumerate(zip(story["clip_ids"], story["references"],
                                                    strict=True)):
            outputs = [found[set_id][k] if set_id in found else "" for found in decoded.values()]
            lines.append(f"| {clip_id} | {reference} | " + " | ".join(outputs) + " |")
        lines.append("")
    return lines


def plot_examples(runs: Sequence[dict], out: str | Path, title: str,
                  clips_table: str | Path | None = None) -> None:
    """The examples figure of the runs' task (its spec's ``example_figure``): ``"maps"``
    (gaze), ``"frames"`` (captions beside each clip's frame) or ``"sets"`` (a set's frames
    with their tracks), the frames read from ``clips_table``."""
    task = runs[0]["task"]
    kind = task_spec(task).example_figure
    if kind == "maps":
        plot_gaze_examples(runs, out, title)
    elif kind in ("frames", "sets"):
        if clips_table is None:
            raise ValueError(f"{title}: the {task} examples figure shows the clips' frames; "
                             "pass the clips table")
        plot = plot_caption_examples if kind == "frames" else plot_set_examples
        plot(runs, pd.read_parquet(clips_table), out, title)
    else:
        raise ValueError(f"{title}: task {task!r} draws no examples figure")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def middle_frame(clip: pd.Series, size: int = FRAME_SIZE) -> np.ndarray:
    """The frame (h, w, 3) uint8 halfway through a clips-table row's clip, its longer side
    ``size`` px; a DecodeError names the video."""
    from vlpipe.decode import FIT, FrameSpec, decode_clip

    frames, _ = decode_clip(clip["video_path"], FrameSpec(fps=2.0, size=size, crop=FIT),
                            float(clip["start"]), float(clip["end"]))
    return frames[len(frames) // 2]


def plot_caption_examples(runs: Sequence[dict], clips: pd.DataFrame, out: str | Path,
                          title: str) -> None:
    """Captioning examples as a PNG, a row per test clip: its middle frame; its references
    and each variant's decoded caption; and per variant that detects concepts (CT-SAN) its top
    concepts, those in the clip's captions green and bold, the others grey."""
    plt = _pyplot()
    shown = shown_runs(runs)
    if not shown:
        raise ValueError(f"{title}: no run holds caption examples (evaluate with today's code)")
    examples = {variant: {ex["clip_id"]: ex for ex in run["examples"]}
                for variant, run in shown.items()}
    clip_ids = list(dict.fromkeys(c for found in examples.values() for c in found))
    unknown = sorted(set(clip_ids) - set(clips["clip_id"]))
    if unknown:
        raise ValueError(f"{title}: example clip(s) {unknown[:5]} are not in the clips table")
    rows = clips.set_index("clip_id")
    detecting = [variant for variant, found in examples.items()
                 if any("concepts" in ex for ex in found.values())]
    texts = {clip_id: _caption_text(clip_id, examples) for clip_id in clip_ids}
    widths = [2.2, 5.0] + [1.7] * len(detecting)
    heights = [max(2.3, 0.17 * text.count("\n") + 0.5) for text in texts.values()]
    figure, axes = plt.subplots(len(clip_ids), len(widths), squeeze=False,
                                figsize=(sum(widths), sum(heights)), width_ratios=widths,
                                height_ratios=heights, layout="constrained")
    for row, clip_id in enumerate(clip_ids):
        for axis in axes[row]:
            axis.axis("off")
        axes[row][0].imshow(middle_frame(rows.loc[clip_id]))
        axes[row][0].set_title(clip_id, fontsize="small")
        axes[row][1].text(0, 1, texts[clip_id], va="top", fontsize="small")
        for axis, variant in zip(axes[row][2:], detecting, strict=True):
            concepts = examples[variant].get(clip_id, {}).get("concepts", [])
            axis.set_title(f"{variant}: top {len(concepts)}", fontsize="small")
            for k, concept in enumerate(concepts):
                axis.text(0.05, 1 - (k + 0.5) / max(len(concepts), 1), concept["word"],
                          va="center", fontsize="small",
                          color="tab:green" if concept["correct"] else "0.5",
                          weight="bold" if concept["correct"] else "normal")
    seeds = ", ".join(f"{variant} seed {run['seed']}" for variant, run in shown.items())
    heading = f"{title}: test clips, their references (quoted) and decoded captions ({seeds})"
    if detecting:
        heading += "; detected concepts, green: in the clip's captions"
    figure.suptitle(textwrap.fill(heading, width=int(14 * sum(widths))), fontsize="medium")
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


def plot_set_examples(runs: Sequence[dict], clips: pd.DataFrame, out: str | Path,
                      title: str) -> None:
    """Fill in the Characters examples as a PNG, from the first variant's run: per test set a
    row of its clips' middle frames with each track's box, labelled with the ``PERSONk`` the
    model gives it (green where it is the truth's, red where not, grey: no mention grounded
    there), and under each frame the sentence as the model filled it in and the truth."""
    plt = _pyplot()
    shown = shown_runs(runs)
    if not shown:
        raise ValueError(f"{title}: no run holds examples (evaluate with today's code)")
    variant, run = next(iter(shown.items()))
    rows = clips.set_index("clip_id")
    sets = run["examples"]
    width = max(len(example["clip_ids"]) for example in sets)
    figure, axes = plt.subplots(len(sets), width, squeeze=False,
                                figsize=(2.6 * width, 3.4 * len(sets)), layout="constrained")
    for axes_row, example in zip(axes, sets, strict=True):
        for axis in axes_row:
            axis.axis("off")
        for k, (axis, clip_id) in enumerate(zip(axes_row, example["clip_ids"], strict=False)):
            frame = middle_frame(rows.loc[clip_id])
            height, side = frame.shape[:2]
            axis.imshow(frame)
            for track in example["tracks"][k]:
                x1, y1, x2, y2 = np.multiply(track["box"], [side, height, side, height])
                colour = ("0.6" if not track["predicted"] else
                          "tab:green" if track["predicted"] == track["truth"] else "tab:red")
                axis.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False,
                                             edgecolor=colour, linewidth=2))
                axis.text(x1, y1, track["predicted"] or "?", color="white", fontsize="x-small",
                          va="bottom", bbox={"facecolor": colour, "pad": 1, "linewidth": 0})
            axis.set_title(textwrap.fill(example["decoded"][k], 34) + "\n"
                           + textwrap.fill(f"truth: {example['references'][k]}", 34),
                           fontsize="x-small", loc="left")
    heading = (f"{title}: test sets, each track labelled with the character {variant} (seed "
               f"{run['seed']}) grounds there (green: right, red: wrong, grey: no mention); "
               "its filled-in sentence above the truth")
    figure.suptitle(textwrap.fill(heading, width=40 * width), fontsize="medium")
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


def _caption_text(clip_id: str, examples: dict[str, dict[str, dict]]) -> str:
    """A clip's first three references (quoted), then each variant's decoded caption, wrapped."""
    references = next(found[clip_id]["references"] for found in examples.values()
                      if clip_id in found)
    lines = [textwrap.fill(f"“{r}”", 70) for r in references[:3]]
    lines += [textwrap.fill(f"{variant}: {found[clip_id]['decoded']}", 70)
              for variant, found in examples.items() if clip_id in found]
    return "\n".join(lines)


def plot_gaze_examples(runs: Sequence[dict], out: str | Path, title: str) -> None:
    """Gaze examples as a PNG: per test clip a row of true maps over its example steps and
    under it a row per variant's predicted maps (each map scaled to its own maximum)."""
    plt = _pyplot()
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
