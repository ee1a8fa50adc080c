"""Every task described once, without torch: the workflow (which task list and stores a run
reads), the config check (its ``task_args``, when the DAG is planned), training (the score that
selects the checkpoint) and the report (columns, sections, chance levels, the paper's tables)
all read these specs. The task's code is `TaskSpec.implementation`, imported by the jobs only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import jsonschema

from vlpipe.planning import InputRef

# task_args every video-sentence task takes (`vlpipe.tasks.base.VideoTextTask`)
COMMON_ARGS: dict[str, dict] = {
    "max_frames": {"type": "integer", "minimum": 1,
                   "description": "at most this many equidistant steps per clip"},
    "max_words": {"type": "integer", "minimum": 1, "description": "sentences truncated to this"},
    "feature_norm": {"enum": ["zscore", "pca", "none"],
                     "description": "per input array, fitted on a bounded training sample"},
    "pca_dims": {"type": "integer", "minimum": 1, "description": "components per array (pca)"},
}


@dataclass(frozen=True)
class TaskSpec:
    """One task. ``args``: its own ``task_args`` (JSON schema per key) beside `COMMON_ARGS`;
    ``predicts``: what it asks the model for (`vlpipe.models.ModelInputs.predicts`);
    ``selection``: the validation score that selects the checkpoint (higher is better), and
    ``selection_label`` its description; ``metrics`` / ``sections``: the report's columns and
    one table per direction (direction → heading); ``paper_tables``: direction → the file in
    ``vlpipe/report/data/`` with the paper's numbers; ``describe``: the report's test line
    (with chance levels) from one run's metrics file."""

    name: str
    implementation: str  # "module:class"
    predicts: str
    args: dict[str, dict]
    selection: Callable[[dict], float]
    selection_label: str
    title: str
    metrics: tuple[str, ...]
    sections: dict[str, str]
    paper: str
    describe: Callable[[dict], str]
    paper_tables: dict[str, str] = field(default_factory=dict)
    task_list: str | None = None  # the list it reads when not its own (tables/tasks/<name>)
    sentence_vectors: bool = False  # reads the text store's frozen sentence vectors
    caption: str = "{heading}"
    # arrays read on the inputs' timeline as what the task predicts (name → "<store>/<array>"),
    # not as model inputs; their stores are among the run's stores
    targets: dict[str, str] = field(default_factory=dict)
    decimals: int = 1  # of our numbers in the report (metrics on a 0–1 scale: 3)
    # the report's figure of the runs' examples (`vlpipe.report.examples.plot_examples`):
    # "maps" (instead of Markdown), "frames" (each clip's frame, beside the Markdown) or "sets"
    # (a set's clips' frames with their labelled tracks, beside the Markdown)
    example_figure: str | None = None
    reads_text: bool = True  # needs the clips' sentences (gaze prediction does not)
    # reads its sentences with the configured sentence encoder itself (``text.encoder``:
    # CiSIN's mentions in the context of their set)
    text_encoder: bool = False
    # inputs it reads as an extractor's per-instance arrays when an experiment names them (input
    # name → the extractor kind whose store it must be: CiSIN's person tracks and faces)
    instance_inputs: dict[str, str] = field(default_factory=dict)

    def target_refs(self) -> list[InputRef]:
        """``targets`` as input references (store and array)."""
        return [InputRef.parse(name, source) for name, source in self.targets.items()]

    @property
    def list_name(self) -> str:
        return self.task_list or self.name

    def check_args(self, task_args: dict, where: str = "") -> None:
        """Every key known and of the right type, else a ValueError naming ``where`` and it."""
        schema = {"type": "object", "additionalProperties": False,
                  "properties": {**COMMON_ARGS, **self.args}}
        unknown = sorted(set(task_args) - set(schema["properties"]))
        if unknown:
            raise ValueError(f"{where}task_args: unknown key(s) {unknown} for task "
                             f"{self.name!r}; known: {sorted(schema['properties'])}")
        try:
            jsonschema.validate(task_args, schema)
        except jsonschema.ValidationError as error:
            key = ".".join(map(str, error.absolute_path))
            raise ValueError(f"{where}task_args.{key}: {error.message}") from None


def _retrieval_test(run: dict) -> str:
    n_test = run["n_test"]
    return (f"Test: {n_test} clips, one sentence each; chance R@1 = {100 / n_test:.2f}%, "
            f"chance MedR ≈ {(n_test + 1) / 2:.0f}.")


def _correspondence_test(run: dict) -> str:
    """Chance levels for a query ranking all n candidates, one of them positive, at random:
    mAP = E[1/rank] = H_n / n (H_n the n-th harmonic number), R@5 = min(5, n) / n."""
    n_test = run["n_test"]
    harmonic = sum(1 / k for k in range(1, n_test + 1))
    return (f"Test: {n_test} video–sentence pairs; each query ranks all {n_test} candidates, "
            f"one positive; chance mAP = {100 * harmonic / n_test:.2f}%, "
            f"chance R@5 = {100 * min(5, n_test) / n_test:.2f}%.")


def _gaze_test(run: dict) -> str:
    return (f"Test: {run['n_test']} clips, every sampled frame with fixations; the predicted "
            f"49×49 map (Gaussian σ = 2, bilinear) and the fixations (Gaussian σ = "
            f"{run.get('eval_sigma', 19)} px) compared at {run.get('eval_size', '?')} px; "
            "uniform chance: Judd AUC = sAUC = 0.5.")


def _captioning_test(run: dict) -> str:
    return (f"Test: {run['n_test']} clips, one caption decoded per clip against all of its "
            "captions; coco-caption metrics ×100.")


def _storytelling_test(run: dict) -> str:
    return (f"Test: {run['n_test']} sets of clips, one sentence decoded per clip, scored per "
            "sentence and per set (the sentences joined); coco-caption metrics ×100.")


def _multiple_choice_test(run: dict) -> str:
    candidates = run.get("n_candidates", 5)
    return (f"Test: {run['n_test']} items, {candidates} candidate sentences each; "
            f"chance accuracy = {100 / candidates:.1f}%.")


def _fill_in_blank_test(run: dict) -> str:
    vocab = run.get("vocab_size")
    words = f" ({vocab} words; uniform chance {100 / vocab:.2f}%)" if vocab else ""
    return (f"Test: {run['n_test']} blanks; accuracy (%) of the word predicted over the "
            f"vocabulary{words}.")


def _fill_in_characters_test(run: dict) -> str:
    majority = run.get("all_different", {})
    return (f"Test: {run['n_test']} sets of 5 clips, {run.get('n_mentions', '?')} SOMEONE "
            f"mentions and {run.get('n_tracks', '?')} person tracks (tracks: "
            f"{run.get('tracks', '?')}; faces: {run.get('faces', 'none')}; mentions read by the "
            "frozen "
            f"{run.get('text_encoder', '?')}); Fill-in accuracy over every pair of mentions of "
            "a set (same character or not; also on the same and the different pairs alone), "
            "grounding accuracy over the mentions, video re-id accuracy over every pair of "
            f"tracks of a set. Answering \"different\" for every pair scores "
            f"{majority.get('fill_in', float('nan')):.1f} % (Fill-in) and "
            f"{majority.get('video_reid', float('nan')):.1f} % (video re-id).")


_RANKING_ARGS = {
    "batch_size": {"type": "integer", "minimum": 2},
    "margin": {"type": "number", "description": "Δ of the max-margin loss"},
    "num_negatives": {"type": "integer", "minimum": 1},
}

TASK_SPECS: dict[str, TaskSpec] = {spec.name: spec for spec in [
    TaskSpec(
        name="retrieval", implementation="vlpipe.tasks.retrieval:RetrievalTask",
        predicts="score",
        args={**_RANKING_ARGS,
              "negatives": {"enum": ["sampled", "in_batch"]},
              "directions": {"enum": ["t2v", "v2t", "both"]}},
        selection=lambda m: (m["t2v"]["R@1"] + m["t2v"]["R@5"] + m["t2v"]["R@10"]) / 3,
        selection_label="mean of text → video R@1, R@5, R@10 (%)",
        title="retrieval", metrics=("R@1", "R@5", "R@10", "MedR"),
        sections={"t2v": "text → video", "v2t": "video → text"}, caption="{heading} retrieval",
        paper="JSFusion (ECCV 2018) on LSMDC / MSR-VTT 1k", describe=_retrieval_test,
        paper_tables={"t2v": "jsfusion_retrieval.csv"}),
    TaskSpec(
        name="multiple_choice", implementation="vlpipe.tasks.multiple_choice:MultipleChoiceTask",
        predicts="score", args=_RANKING_ARGS,
        selection=lambda m: m["mc"]["accuracy"], selection_label="multiple-choice accuracy (%)",
        title="multiple choice", metrics=("accuracy",),
        sections={"mc": "multiple-choice accuracy (%)"},
        paper="JSFusion (ECCV 2018) on LSMDC / MSR-VTT", describe=_multiple_choice_test,
        paper_tables={"mc": "jsfusion_mc.csv"}),
    TaskSpec(
        name="fill_in_blank", implementation="vlpipe.tasks.fill_in_blank:FillInBlankTask",
        predicts="word", args={"batch_size": {"type": "integer", "minimum": 1}},
        selection=lambda m: m["fib"]["accuracy"], selection_label="fill-in-the-blank accuracy (%)",
        title="fill in the blank", metrics=("accuracy",),
        sections={"fib": "fill-in-the-blank accuracy (%)"},
        paper="JSFusion (ECCV 2018) on LSMDC", describe=_fill_in_blank_test,
        paper_tables={"fib": "jsfusion_fib.csv"}),
    TaskSpec(
        name="correspondence", implementation="vlpipe.tasks.correspondence:CorrespondenceTask",
        predicts="score", task_list="retrieval", sentence_vectors=True,
        args={"batch_size": {"type": "integer", "minimum": 2, "multipleOf": 2,
                             "description": "half aligned, half random pairs"},
              "frames_per_clip": {"type": "integer", "minimum": 1},
              "train_noise": {"type": "number", "minimum": 0, "maximum": 1},
              "noise_seed": {"type": "integer"}},
        selection=lambda m: (m["t2v"]["mAP"] + m["v2t"]["mAP"]) / 2,
        selection_label="mean of video- and sentence-search mAP (%)",
        title="video ↔ sentence correspondence (retrieval)", metrics=("mAP", "R@5"),
        sections={"t2v": "video search (sentence → videos)",
                  "v2t": "sentence search (video → sentences)"},
        paper="Watch and Learn on ApartmenTour (100 test pairs)", describe=_correspondence_test,
        paper_tables={"t2v": "wal_video_search.csv", "v2t": "wal_sentence_search.csv"}),
    TaskSpec(
        name="captioning", implementation="vlpipe.tasks.captioning:CaptioningTask",
        predicts="caption", task_list="retrieval",
        args={"batch_size": {"type": "integer", "minimum": 1},
              "beam": {"type": "integer", "minimum": 1, "description": "1 = greedy"}},
        selection=lambda m: m["caption"]["CIDEr"], selection_label="CIDEr (×100)",
        title="captioning",
        metrics=("BLEU-1", "BLEU-2", "BLEU-3", "METEOR", "ROUGE-L", "CIDEr"),
        sections={"caption": "captioning (×100)"},
        paper="GEAN (thesis ch. 3) on LSMDC / VAS; CT-SAN (ch. 4) on LSMDC16",
        describe=_captioning_test,
        paper_tables={"caption": "captioning.csv"}, example_figure="frames"),
    TaskSpec(
        name="storytelling", implementation="vlpipe.tasks.storytelling:StorytellingTask",
        predicts="story",
        args={"batch_size": {"type": "integer", "minimum": 1, "description": "sets per step"},
              "beam": {"type": "integer", "minimum": 1, "description": "1 = greedy"}},
        selection=lambda m: m["sentence"]["CIDEr"],
        selection_label="sentence-level CIDEr (×100)", title="storytelling",
        metrics=("CIDEr", "METEOR", "ROUGE-L"),
        sections={"sentence": "sentence level (×100)", "set": "set level (×100)"},
        paper="TAPM (thesis ch. 7) on LSMDC 2019 / VIST", describe=_storytelling_test,
        paper_tables={"sentence": "tapm_sentence.csv", "set": "tapm_set.csv"}),
    TaskSpec(
        name="gaze", implementation="vlpipe.tasks.gaze:GazeTask", predicts="gaze",
        task_list="retrieval",
        args={"batch_size": {"type": "integer", "minimum": 1},
              "mirror": {"type": "boolean", "description": "left–right flips in training"},
              "eval_size": {"type": "integer", "minimum": 8,
                            "description": "side (px) at which maps are compared"},
              "eval_sigma": {"type": "number", "exclusiveMinimum": 0,
                             "description": "Gaussian σ (px at eval_size) of the fixations"},
              "shuffled_negatives": {"type": "integer", "minimum": 1,
                                     "description": "other clips' frames per sAUC"}},
        selection=lambda m: m["gaze"]["CC"], selection_label="linear correlation CC",
        title="gaze prediction", metrics=("Sim", "CC", "sAUC", "AUC"),
        sections={"gaze": "gaze prediction"}, caption="{heading}",
        paper="RGP (thesis ch. 3) on VAS / Hollywood2 EM", describe=_gaze_test,
        paper_tables={"gaze": "rgp_gaze.csv"}, decimals=3,
        targets={"gaze": "gaze/map", "has_gaze": "gaze/has_gaze", "gaze_frame": "gaze/frame"},
        example_figure="maps", reads_text=False),
    TaskSpec(
        name="fill_in_characters",
        implementation="vlpipe.tasks.characters:FillInCharactersTask", predicts="characters",
        args={"batch_size": {"type": "integer", "minimum": 1, "description": "sets per step"}},
        selection=lambda m: m["fill_in"]["accuracy"],
        selection_label="Fill-in the Characters accuracy (%)", title="who is who",
        metrics=("accuracy", "same", "different"),  # of the pairs of each kind
        sections={"fill_in": "Fill in the Characters accuracy (%)",
                  "grounding": "character grounding accuracy (%)",
                  "video_reid": "video re-identification accuracy (%)"},
        paper="CiSIN (thesis ch. 6) on LSMDC 2019 / M-VAD Names",
        describe=_fill_in_characters_test,
        paper_tables={"fill_in": "cisin_fill_in.csv", "grounding": "cisin_grounding.csv",
                      "video_reid": "cisin_video_reid.csv"},
        example_figure="sets", text_encoder=True,
        instance_inputs={"persons": "persons", "faces": "faces"}),
]}


def task_spec(name: str) -> TaskSpec:
    if name not in TASK_SPECS:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(TASK_SPECS))}")
    return TASK_SPECS[name]
