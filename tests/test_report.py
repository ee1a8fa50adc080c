import json
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pandas as pd
import pytest

from vlpipe.report import write_report
from vlpipe.report.curves import plot_training_curves, read_train_log
from vlpipe.report.paper import paper_table
from vlpipe.tasks.specs import TASK_SPECS

FEATURES = [{"extractor": "resnet152", "weights": "random-seed-0", "pretrained": False}]


def _write(tmp_path, run):
    path = tmp_path / f"{run['variant']}-{run['seed']}.json"
    path.write_text(json.dumps(run))
    return path


def _run(tmp_path, variant, seed, r1):
    metrics = {"R@1": r1, "R@5": 2 * r1, "R@10": 3 * r1, "MedR": 10.0 - r1, "MeanR": 20.0}
    return _write(tmp_path, {"experiment": "exp", "variant": variant, "seed": seed,
                             "dataset": "demo", "n_test": 100, "features": FEATURES,
                             "test": {"t2v": metrics, "v2t": metrics}})


def _accuracy_run(tmp_path, task, key, variant, seed, accuracy, **extra):
    return _write(tmp_path, {"experiment": "exp", "variant": variant, "seed": seed,
                             "dataset": "demo", "task": task, "n_test": 40,
                             "features": FEATURES, "test": {key: {"accuracy": accuracy}},
                             **extra})


def test_paper_numbers_are_the_published_ones():
    paper = paper_table("retrieval", "t2v")
    assert paper.loc["JSFusion", ("Paper LSMDC", "R@5")] == 21.2  # the thesis' typo fixed
    assert paper.loc["JSFusion", ("Paper MSR-VTT", "MedR")] == 13
    assert paper.loc["LSTM-fusion", ("Paper LSMDC", "R@10")] == 15.9
    mc = paper_table("multiple_choice", "mc")
    assert mc.loc["MLB", ("Paper MSR-VTT", "accuracy")] == 76.1 and len(mc) == 12
    # the thesis's Table 4.2 (LSMDC only)
    assert mc.loc["Base-SAN", ("Paper LSMDC", "accuracy")] == 60.1
    assert paper.loc["Base-SAN", ("Paper LSMDC", "MedR")] == 83
    assert paper.loc[["Base-SAN"], "Paper MSR-VTT"].isna().all(axis=None)
    fib = paper_table("fill_in_blank", "fib")
    assert fib.loc["JSFusion-noaudio", ("Paper LSMDC", "accuracy")] == 45.26
    assert fib.loc["Base-SAN", ("Paper LSMDC", "accuracy")] == 34.5  # the thesis's Table 4.1
    assert list(fib.columns) == [("Paper LSMDC", "accuracy")] and len(fib) == 12


def test_report_puts_mean_and_std_beside_the_paper(tmp_path):
    files = [_run(tmp_path, "JSFusion-noaudio", 0, 4.0), _run(tmp_path, "JSFusion-noaudio", 1, 6.0),
             _run(tmp_path, "LSTM-fusion", 0, 1.0)]
    paths = write_report(files, tmp_path / "report", "exp", {"epochs": 3})
    md = paths["md"].read_text()
    # mean 5.0, sample std of (4, 6) = 1.41; one seed → no ±
    paper = "9.0 | 20.9 | 32.1 | 39 | 9.2 | 28.3 | 41.3 | 17"
    assert f"| JSFusion-noaudio | {paper} | 5.0 ± 1.4 | 10.0 ± 2.8 |" in md
    paper = "3.0 | 8.9 | 15.9 | 95 | 3.0 | 9.6 | 17.1 | 67"
    assert f"| LSTM-fusion | {paper} | 1.0 | 2.0 | 3.0 | 9.0 |" in md
    assert "RANDOM initialisation" in md and "chance R@1 = 1.00%" in md
    assert md.startswith("# exp: retrieval on demo")
    tex = paths["tex"].read_text()
    assert r"\toprule" in tex and r"5.0 $\pm$ 1.4" in tex and r"JST\_fc" in tex
    assert tex.count(r"\centering") == 2 and r"\label{tab:exp-t2v}" in tex
    csv = pd.read_csv(paths["csv"])
    ours = csv[(csv.source == "ours") & (csv.variant == "JSFusion-noaudio") &
               (csv.direction == "t2v") & (csv.metric == "R@1")]
    assert ours[["mean", "seeds"]].values.tolist() == [[5.0, 2]]
    assert len(csv[csv.source == "paper"]) == 10 * 8 + 4  # Base-SAN: LSMDC only


def test_multiple_choice_report(tmp_path):
    files = [_accuracy_run(tmp_path, "multiple_choice", "mc", variant, seed, accuracy,
                           n_candidates=4)
             for variant, seed, accuracy in [("JSFusion", 0, 60.0), ("JSFusion", 1, 64.0),
                                             ("Mine", 0, 30.0), ("Mine", 1, 31.0)]]
    paths = write_report(files, tmp_path / "report", "exp", {})
    md = paths["md"].read_text()
    assert md.startswith("# exp: multiple choice on demo")
    assert "Test: 40 items, 4 candidate sentences each; chance accuracy = 25.0%." in md
    assert "| model | Paper LSMDC accuracy | Paper MSR-VTT accuracy | Ours demo accuracy |" in md
    assert "| JSFusion | 73.5 | 83.4 | 62.0 ± 2.8 |" in md
    assert "| MLB | 69.0 | 76.1 |  |" in md
    assert "| Mine |  |  | 30.5 ± 0.7 |" in md  # a variant the paper lacks still gets a row
    assert "video → text" not in md
    tex = paths["tex"].read_text()
    assert r"62.0 $\pm$ 2.8" in tex and r"multiple-choice accuracy (\%)" in tex
    csv = pd.read_csv(paths["csv"])
    paper = csv[csv.source == "paper"]
    assert len(paper) == 11 * 2 + 1 and set(paper.direction) == {"mc"}  # Base-SAN: LSMDC
    ours = csv[(csv.source == "ours") & (csv.variant == "Mine")]
    assert ours[["direction", "metric", "mean", "seeds"]].values.tolist() == [
        ["mc", "accuracy", 30.5, 2]]


def test_multiple_choice_chance_defaults_to_five_candidates(tmp_path):
    files = [_accuracy_run(tmp_path, "multiple_choice", "mc", "JSFusion", 0, 50.0)]
    md = write_report(files, tmp_path / "report", "exp", {})["md"].read_text()
    assert "5 candidate sentences each; chance accuracy = 20.0%." in md
    assert "| JSFusion | 73.5 | 83.4 | 50.0 |" in md


def test_fill_in_blank_report(tmp_path):
    files = [_accuracy_run(tmp_path, "fill_in_blank", "fib", variant, seed, accuracy,
                           vocab_size=500)
             for variant, seed, accuracy in [("JSFusion-noaudio", 0, 40.0),
                                             ("JSFusion-noaudio", 1, 42.0),
                                             ("LSTM-fusion", 0, 20.0), ("LSTM-fusion", 1, 24.0)]]
    paths = write_report(files, tmp_path / "report", "exp", {})
    md = paths["md"].read_text()
    assert md.startswith("# exp: fill in the blank on demo")
    assert ("Test: 40 blanks; accuracy (%) of the word predicted over the vocabulary "
            "(500 words; uniform chance 0.20%).") in md
    assert "| model | Paper LSMDC accuracy | Ours demo accuracy |" in md
    assert "| JSFusion-noaudio | 45.26 | 41.0 ± 1.4 |" in md
    assert "| Human | 68.7 |  |" in md
    assert "| LSTM-fusion |  | 22.0 ± 2.8 |" in md  # not in the paper's FIB table
    csv = pd.read_csv(paths["csv"])
    assert len(csv[csv.source == "paper"]) == 12
    assert set(csv[csv.source == "paper"].dataset) == {"LSMDC"}



def test_paper_numbers_per_direction():
    for task, spec in TASK_SPECS.items():  # every paper table is one of the task's tables
        assert spec.paper_tables, task  # and every task has the paper's numbers
        assert set(spec.paper_tables) <= set(spec.sections), task
        for direction in spec.paper_tables:
            assert not paper_table(task, direction).empty, (task, direction)
    with pytest.raises(KeyError, match="nope"):
        paper_table("nope", "t2v")
    video, sentence = paper_table("correspondence", "t2v"), paper_table("correspondence", "v2t")
    assert list(video.columns) == [("Paper ApartmenTour", "mAP"), ("Paper ApartmenTour", "R@5")]
    assert list(video.index) == list(sentence.index) and len(video) == 13
    assert video.loc["WAL-att-adv", ("Paper ApartmenTour", "mAP")] == 30.1  # BVF=4, the default
    assert sentence.loc["WAL-att-adv", ("Paper ApartmenTour", "R@5")] == 45.4
    assert sentence.loc["WAL-att-adv-BVF16", ("Paper ApartmenTour", "mAP")] == 30.3
    assert video.loc["WAL-att-adv-pADV", ("Paper ApartmenTour", "R@5")] == 43.0
    assert sentence.loc["WAL-att-triplet", ("Paper ApartmenTour", "mAP")] == 26.9
    assert video.loc["SCAN LSE+AVG", ("Paper ApartmenTour", "R@5")] == 41.3
    none = paper_table("retrieval", "v2t")  # JSFusion publishes text → video only
    assert none.empty and len(none.columns) == 0 and len(none.index) == 0


def test_retrieval_report_shows_the_paper_beside_text_to_video_only(tmp_path):
    files = [_run(tmp_path, "JSFusion", 0, 4.0), _run(tmp_path, "Mine", 0, 2.0)]
    paths = write_report(files, tmp_path / "report", "exp", {})
    md = paths["md"].read_text()
    text_to_video, video_to_text = md.split("## video → text")
    assert text_to_video.count("| Paper LSMDC R@1 |") == 1
    assert ("## video → text\n\n| model | Ours demo R@1 | Ours demo R@5 | Ours demo R@10 "
            "| Ours demo MedR |\n|---|---|---|---|---|\n| JSFusion | 4.0 | 8.0 | 12.0 | 6.0 |\n"
            "| Mine | 2.0 | 4.0 | 6.0 | 8.0 |\n\n## Provenance") in md
    assert "Paper" not in video_to_text.split("## Provenance")[0]
    assert paths["tex"].read_text().count("Paper LSMDC") == 1
    paper = pd.read_csv(paths["csv"]).query("source == 'paper'")
    assert set(paper.direction) == {"t2v"} and len(paper) == 10 * 8 + 4  # Base-SAN: LSMDC


def _correspondence_run(tmp_path, variant, seed, video_map, sentence_map):
    def metrics(average_precision):
        return {"R@1": 1.0, "R@5": average_precision + 10, "R@10": 1.0, "MedR": 3.0,
                "MeanR": 4.0, "mAP": average_precision}
    return _write(tmp_path, {"experiment": "exp", "variant": variant, "seed": seed,
                             "dataset": "demo", "task": "correspondence", "n_test": 100,
                             "features": FEATURES, "test": {"t2v": metrics(video_map),
                                                            "v2t": metrics(sentence_map)}})


def test_correspondence_report_has_the_paper_in_both_directions(tmp_path):
    files = [_correspondence_run(tmp_path, variant, seed, video_map, sentence_map)
             for variant, seed, video_map, sentence_map in [
                 ("WAL-att-adv", 0, 20.0, 18.0), ("WAL-att-adv", 1, 24.0, 19.0),
                 ("Mine", 0, 3.0, 4.0), ("Mine", 1, 5.0, 6.0)]]
    paths = write_report(files, tmp_path / "report", "exp", {})
    md = paths["md"].read_text()
    assert md.startswith("# exp: video ↔ sentence correspondence (retrieval) on demo")
    # chance for 100 candidates: mAP = H_100 / 100 = 0.0518737..., R@5 = 5 / 100
    assert "chance mAP = 5.19%, chance R@5 = 5.00%." in md
    header = ("| model | Paper ApartmenTour mAP | Paper ApartmenTour R@5 | Ours demo mAP "
              "| Ours demo R@5 |")
    video, sentence = md.split("## sentence search (video → sentences)")
    assert "## video search (sentence → videos)" in video
    sentence = sentence.split("## Provenance")[0]
    # WAL-att-adv: video mAP (20, 24) → 22.0 ± 2.83, R@5 (30, 34) → 32.0 ± 2.83;
    # sentence mAP (18, 19) → 18.5 ± 0.71, R@5 (28, 29) → 28.5 ± 0.71 (sample std)
    assert header in video and header in sentence
    assert "| WAL-att-adv | 30.1 | 44.2 | 22.0 ± 2.8 | 32.0 ± 2.8 |" in video
    assert "| WAL-att-adv | 30.0 | 45.4 | 18.5 ± 0.7 | 28.5 ± 0.7 |" in sentence
    assert "| PVSE | 27.5 | 40.3 |  |  |" in video and "| PVSE | 27.1 | 42.4 |  |  |" in sentence
    assert "| Mine |  |  | 4.0 ± 1.4 | 14.0 ± 1.4 |" in video
    assert "| Mine |  |  | 5.0 ± 1.4 | 15.0 ± 1.4 |" in sentence
    tex = paths["tex"].read_text()
    assert tex.count(r"\multicolumn{2}{c}{Paper ApartmenTour}") == 2
    assert r"\caption{exp: sentence search (video $\rightarrow$ sentences), demo}" in tex
    assert r"\label{tab:exp-v2t}" in tex
    csv = pd.read_csv(paths["csv"])
    paper = csv[csv.source == "paper"]
    assert len(paper) == 13 * 2 * 2 and set(paper.dataset) == {"ApartmenTour"}
    assert paper.groupby("direction").size().to_dict() == {"t2v": 26, "v2t": 26}
    pvse = paper[(paper.variant == "PVSE") & (paper.metric == "mAP")]
    assert pvse[["direction", "mean"]].values.tolist() == [["t2v", 27.5], ["v2t", 27.1]]
    ours = csv[(csv.source == "ours") & (csv.variant == "WAL-att-adv") & (csv.metric == "mAP")]
    assert ours[["direction", "mean", "seeds"]].values.tolist() == [["t2v", 22.0, 2],
                                                                     ["v2t", 18.5, 2]]


def test_correspondence_chance_levels():
    describe = TASK_SPECS["correspondence"].describe
    assert abs(sum(1 / k for k in range(1, 101)) / 100 - 0.0518737751764) < 1e-12
    assert "chance mAP = 5.19%, chance R@5 = 5.00%." in describe({"n_test": 100})
    # n = 3: H_3 / 3 = (11/6) / 3 = 0.6111; R@5 = min(5, 3) / 3 = 1
    assert "chance mAP = 61.11%, chance R@5 = 100.00%." in describe({"n_test": 3})
    # n = 7: H_7 / 7 = (363/140) / 7 = 0.37041; R@5 = 5 / 7 = 0.71429
    assert "chance mAP = 37.04%, chance R@5 = 71.43%." in describe({"n_test": 7})

def test_report_refuses_mixed_tasks(tmp_path):
    files = [_run(tmp_path, "JSFusion", 0, 4.0),
             _accuracy_run(tmp_path, "multiple_choice", "mc", "Mine", 0, 50.0)]
    with pytest.raises(ValueError, match="one task"):
        write_report(files, tmp_path / "report", "exp", {})


def write_log(path, rows):
    """A train_log.jsonl of (loss, selection) per epoch, 1-based."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"epoch": epoch, "loss": loss, "val": {},
                                        "selection": selection}) + "\n"
                            for epoch, (loss, selection) in enumerate(rows, start=1)))
    return path


def test_training_curves_average_the_seeds_of_each_variant(tmp_path):
    runs = {
        "full": [write_log(tmp_path / "full-0.jsonl", [(9.0, 10.0), (5.0, 30.0), (3.0, 50.0)]),
                 write_log(tmp_path / "full-1.jsonl", [(7.0, 20.0), (3.0, 40.0)])],  # stopped
        "ablation": [write_log(tmp_path / "abl-0.jsonl", [(8.0, 5.0), (6.0, 15.0)])],
    }
    out = tmp_path / "report" / "curves.png"
    frame = plot_training_curves(runs, out, "exp", "accuracy (%)")
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    full = frame[frame["variant"] == "full"].set_index("epoch")
    assert full.loc[1, ["loss_mean", "loss_min", "loss_max"]].tolist() == [8.0, 7.0, 9.0]
    assert full.loc[2, ["selection_mean", "selection_min", "selection_max"]].tolist() == [
        35.0, 30.0, 40.0]
    assert full["runs"].tolist() == [2, 2, 1]  # seed 1 stopped after epoch 2
    assert full.loc[3, "selection_mean"] == 50.0
    assert frame["variant"].unique().tolist() == ["full", "ablation"]  # config order


def test_logged_training_statistics_get_their_own_curve(tmp_path):
    from matplotlib.axes import Axes

    adversarial = write_log(tmp_path / "adv.jsonl", [(2.0, 10.0), (1.0, 20.0)])
    entries = [json.loads(line) for line in adversarial.read_text().splitlines()]
    for entry, share in zip(entries, (0.6, 0.9), strict=True):
        entry["train_stats"] = {"lvc_fraction": share}
    adversarial.write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    runs = {"WAL-att-adv": [adversarial],
            "WAL-att": [write_log(tmp_path / "att.jsonl", [(2.0, 5.0), (1.5, 8.0)])]}
    with patch("matplotlib.axes.Axes.set", autospec=True, side_effect=Axes.set) as set_axes:
        frame = plot_training_curves(runs, tmp_path / "curves.png", "wal", "mAP")
    titles = [call.kwargs["title"] for call in set_axes.call_args_list if "title" in call.kwargs]
    assert titles == ["training loss", "validation: mAP", "pairs in the LVC loss (z = 0)"]
    shares = frame.set_index(["variant", "epoch"])["lvc_fraction_mean"]
    assert shares["WAL-att-adv"].tolist() == [0.6, 0.9]
    assert shares["WAL-att"].isna().all()  # logs no such statistic: no line


def test_training_log_errors_name_file_and_line(tmp_path):
    log = write_log(tmp_path / "log.jsonl", [(1.0, 2.0)])
    log.write_text(log.read_text() + '{"epoch": 2, "loss": 1.0}\n')
    with pytest.raises(ValueError, match=r"log\.jsonl:2: not a training-log entry"):
        read_train_log(log)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="no epochs logged"):
        read_train_log(tmp_path / "empty.jsonl")


def _code(step: str, fingerprint: str, commit: str = "a" * 40) -> dict:
    return {"commit": commit, "dirty": False, "source": "s", "step": step,
            "step_fingerprint": fingerprint}


def _coded_run(tmp_path, variant, train_fingerprint):
    features = [{**FEATURES[0], "code": _code("extract", "e1")}]
    code = {"train": _code("train", train_fingerprint), "evaluate": _code("evaluate", "v1")}
    return _accuracy_run(tmp_path, "multiple_choice", "mc", variant, 0, 50.0,
                         features=features, code=code)


def test_report_states_the_code_and_flags_runs_of_different_code(tmp_path):
    same = [_coded_run(tmp_path, "JSFusion", "t1"), _coded_run(tmp_path, "LSTM-fusion", "t1"),
            _accuracy_run(tmp_path, "multiple_choice", "mc", "-noaudio", 0, 45.0, features=[],
                          code={"train": _code("train", "t1"),
                                "evaluate": _code("evaluate", "v1")})]  # reads no store
    md = write_report(same, tmp_path / "same", "exp", {})["md"].read_text()
    assert f"- code: vlpipe {'a' * 12}\n" in md and "MIXED" not in md
    mixed = [same[0], _coded_run(tmp_path / "..", "LSTM-fusion", "t2"),
             _accuracy_run(tmp_path, "multiple_choice", "mc", "JST_fc", 0, 40.0)]  # no code
    md = write_report(mixed, tmp_path / "mixed", "exp", {})["md"].read_text()
    assert ("- **MIXED CODE** in training: the runs of this table were made by different code"
            in md)
    assert "`t1`: JSFusion/seed 0; `t2`: LSTM-fusion/seed 0; `unrecorded`: JST_fc/seed 0" in md
    assert "unrecorded code" in md


def _caption_run(tmp_path, variant, seed, cider, decoded):
    metrics = {"BLEU-1": 50.0, "BLEU-2": 40.0, "BLEU-3": 30.0, "METEOR": 25.0, "ROUGE-L": 45.0,
               "CIDEr": cider}
    examples = [{"clip_id": clip, "decoded": text, "references": [f"{clip} one", f"{clip} two"]}
                for clip, text in decoded.items()]
    return _write(tmp_path, {"experiment": "exp", "variant": variant, "seed": seed,
                             "dataset": "demo", "task": "captioning", "n_test": 2,
                             "features": FEATURES, "test": {"caption": metrics},
                             "examples": examples})


def test_captioning_report_shows_the_thesis_rows_and_each_models_decoded_captions(tmp_path):
    """Our variants share the thesis's rows (GEAN, GEAN-uniform); under the table, per test
    clip its references and what each variant's lowest seed decoded."""
    files = [_caption_run(tmp_path, "GEAN", 1, 120.0, {"c1": "a red circle", "c2": "seed one"}),
             _caption_run(tmp_path, "GEAN", 0, 100.0, {"c1": "a blue star", "c2": "a cross"}),
             _caption_run(tmp_path, "GEAN-uniform", 0, 90.0, {"c1": "a star", "c2": "a"})]
    md = write_report(files, tmp_path / "out", "captioners", {})["md"].read_text()
    table = md[:md.index("## Examples")].splitlines()
    rows = {line.split(" | ")[0]: line for line in table if line.startswith("| GEAN")}
    assert rows["| GEAN"].endswith("| 110.0 ± 14.1 |")  # CIDEr over seeds 0 and 1
    assert " 7.2 | 15.6 | 9.3 | " in rows["| GEAN"]  # the thesis's LSMDC METEOR, ROUGE-L, CIDEr
    assert rows["| GEAN-uniform"].endswith("| 90.0 |")
    examples = md[md.index("## Examples: decoded test captions"):md.index("## Provenance")]
    assert "GEAN seed 0, GEAN-uniform seed 0" in examples
    assert "**c1** — references: “c1 one”; “c1 two”" in examples
    assert "| GEAN | a blue star |\n| GEAN-uniform | a star |" in examples
    assert "seed one" not in examples


def test_what_runs_measure_beyond_the_papers_tables_gets_a_table_of_ours(tmp_path):
    """CT-SAN's concept detection (precision/recall@10, its frequency prior's): no paper column,
    one row per variant, every metric any run reports (Base-SAN: the prior's only)."""
    def run(variant, seed, concepts):
        path = Path(_caption_run(tmp_path, variant, seed, 90.0, {"c1": "a"}))
        data = json.loads(path.read_text())
        data["test"]["concepts"] = concepts
        path.write_text(json.dumps(data))
        return path

    files = [run("CT-SAN", 0, {"P@10": 60.0, "R@10": 50.0, "prior P@10": 40.0}),
             run("CT-SAN", 1, {"P@10": 70.0, "R@10": 50.0, "prior P@10": 40.0}),
             run("Base-SAN", 0, {"prior P@10": 40.0})]
    md = write_report(files, tmp_path / "out", "ctsan", {})["md"].read_text()
    section = md[md.index("## concepts (ours only)"):md.index("## Examples")]
    assert "| model | Ours demo P@10 | Ours demo R@10 | Ours demo prior P@10 |" in section
    assert "| CT-SAN | 65.0 ± 7.1 | 50.0 ± 0.0 | 40.0 ± 0.0 |" in section
    assert "| Base-SAN |  |  | 40.0 |" in section
    assert "13.5" not in section  # the paper's CT-SAN row is in the caption table


def test_captioning_examples_show_the_detected_concepts_with_the_right_ones_marked(tmp_path):
    run = Path(_caption_run(tmp_path, "CT-SAN", 0, 90.0, {"c1": "a red star"}))
    data = json.loads(run.read_text())
    data["examples"][0]["concepts"] = [{"word": "red", "correct": True},
                                       {"word": "circle", "correct": False}]
    run.write_text(json.dumps(data))
    base = _caption_run(tmp_path, "Base-SAN", 0, 80.0, {"c1": "a star"})
    md = write_report([run, base], tmp_path / "out", "ctsan", {})["md"].read_text()
    assert ("| CT-SAN | a red star |\n| Base-SAN | a star |\n\nCT-SAN's top 2 detected "
            "concepts (**bold**: in the clip's captions): **red** · circle\n") in md
    assert "Base-SAN's top" not in md


def test_reports_without_examples_have_no_examples_section(tmp_path):
    md = write_report([_run(tmp_path, "JSFusion", 0, 10.0)], tmp_path / "out", "ret", {})
    assert "## Examples" not in md["md"].read_text()


def _gaze_run(variant, seed, peak):
    maps = [[[255 if (r, c) == peak else 0 for c in range(3)] for r in range(3)]] * 2
    example = {"clip_id": "c1", "steps": [0, 4], "truth": maps, "predicted": maps}
    return {"experiment": "gaze", "variant": variant, "seed": seed, "dataset": "demo",
            "task": "gaze", "n_test": 1, "features": FEATURES,
            "test": {"gaze": {"Sim": 0.5, "CC": 0.5, "sAUC": 0.6, "AUC": 0.9, "frames": 2}},
            "examples": [example]}


def test_gaze_examples_figure_has_a_row_of_truth_and_one_per_variant(tmp_path):
    import matplotlib.image

    from vlpipe.report.examples import plot_gaze_examples, shown_runs

    runs = [_gaze_run("RGP", 1, (0, 0)), _gaze_run("RGP", 0, (1, 1)),
            _gaze_run("Uniform", 0, (2, 2))]
    assert {v: run["seed"] for v, run in shown_runs(runs).items()} == {"RGP": 0, "Uniform": 0}
    plot_gaze_examples(runs, tmp_path / "gaze-examples.png", "gaze")
    height, width, _ = matplotlib.image.imread(tmp_path / "gaze-examples.png").shape
    assert (height, width) == (540, 360)  # 3 rows (truth, RGP, Uniform) × 2 steps, 1.8 in each
    with pytest.raises(ValueError, match="no run holds gaze examples"):
        plot_gaze_examples([{**runs[0], "examples": []}], tmp_path / "none.png", "gaze")


def _caption_example_run(variant, seed, clip_ids, concepts=None):
    examples = [{"clip_id": c, "decoded": f"{variant} says {c}", "references": ["a red star"],
                 **({"concepts": concepts} if concepts else {})} for c in clip_ids]
    return {"experiment": "cap", "variant": variant, "seed": seed, "dataset": "demo",
            "task": "captioning", "n_test": 2, "features": FEATURES,
            "test": {"caption": {"CIDEr": 10.0}}, "examples": examples}


def test_captions_figure_shows_each_clips_middle_frame_and_the_detected_concepts(
        tmp_path, tiny_clips):
    import matplotlib.image

    from vlpipe.report.examples import middle_frame, plot_examples

    clip_ids = list(tiny_clips["clip_id"][:2])
    concepts = [{"word": "red", "correct": True}, {"word": "blue", "correct": False}]
    runs = [_caption_example_run("CT-SAN", 0, clip_ids, concepts),
            _caption_example_run("Base-SAN", 0, clip_ids)]
    clips_table = tmp_path / "clips.parquet"
    tiny_clips.to_parquet(clips_table)
    plot_examples(runs, tmp_path / "cap-examples.png", "cap", clips_table)
    height, width, _ = matplotlib.image.imread(tmp_path / "cap-examples.png").shape
    # a row per clip (2.3 in); frame, captions and CT-SAN's concepts: 2.2 + 5 + 1.7 in
    assert (height, width) == (460, 890)
    frame = middle_frame(tiny_clips.iloc[0])
    assert frame.shape == (224, 224, 3) and frame.dtype == np.uint8 and frame.std() > 0
    with pytest.raises(ValueError, match="pass the clips table"):
        plot_examples(runs, tmp_path / "x.png", "cap")
    other = [_caption_example_run("CT-SAN", 0, ["nowhere"])]
    with pytest.raises(ValueError, match=r"\['nowhere'\] are not in the clips table"):
        plot_examples(other, tmp_path / "x.png", "cap", clips_table)
    with pytest.raises(ValueError, match="draws no examples figure"):
        plot_examples([{**runs[0], "task": "retrieval"}], tmp_path / "x.png", "cap")


def test_storytelling_report_has_both_levels_beside_the_thesis_and_the_stories(tmp_path):
    sentence = paper_table("storytelling", "sentence")
    assert sentence.loc["GPT2-Scratch", ("Paper LSMDC 2019", "CIDEr")] == 12.68  # Table 7.4
    assert sentence.loc["TAPM-A+Split", ("Paper LSMDC 2019", "ROUGE-L")] == 19.60  # Table 7.3
    story_set = paper_table("storytelling", "set")
    assert story_set.loc["TAPM", ("Paper VIST", "CIDEr")] == 13.8  # Table 7.2
    assert story_set.loc["TAPM", ("Paper VIST (Table 7.3)", "CIDEr")] == 8.3
    scores = {"CIDEr": 20.0, "METEOR": 9.0, "ROUGE-L": 21.0}
    example = {"set_id": "v0+5", "clip_ids": ["v0", "v1"], "references": ["a red star",
                                                                          "then it spins"],
               "decoded": ["a star", "it spins"]}
    files = [_write(tmp_path, {"experiment": "story", "variant": variant, "seed": 0,
                               "dataset": "demo", "task": "storytelling", "n_test": 10,
                               "features": FEATURES, "test": {"sentence": scores, "set": scores},
                               "examples": [example]})
             for variant in ("GPT2-Scratch", "GPT2-Scratch-A")]
    md = write_report(files, tmp_path / "report", "story", {})["md"].read_text()
    assert "## sentence level (×100)" in md and "## set level (×100)" in md
    assert "| GPT2-Scratch | 12.68 | 8.27 | 20.08 | 20.0 | 9.0 | 21.0 |" in md
    assert ("| clip | reference | GPT2-Scratch | GPT2-Scratch-A |\n|---|---|---|---|\n"
            "| v0 | a red star | a star | a star |\n| v1 | then it spins | it spins | it spins |"
            in md)
