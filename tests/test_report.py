import json

import pandas as pd

from vlpipe.report import write_report
from vlpipe.report.paper import jsfusion_retrieval


def _run(tmp_path, variant, seed, r1):
    metrics = {"R@1": r1, "R@5": 2 * r1, "R@10": 3 * r1, "MedR": 10.0 - r1, "MeanR": 20.0}
    run = {"experiment": "exp", "variant": variant, "seed": seed, "dataset": "demo",
           "n_test": 100, "test": {"t2v": metrics, "v2t": metrics},
           "features": [{"extractor": "resnet152", "weights": "random-seed-0",
                         "pretrained": False}]}
    path = tmp_path / f"{variant}-{seed}.json"
    path.write_text(json.dumps(run))
    return path


def test_paper_numbers_are_the_published_ones():
    paper = jsfusion_retrieval()
    assert paper.loc["JSFusion", ("Paper LSMDC", "R@5")] == 21.2  # the thesis' typo fixed
    assert paper.loc["JSFusion", ("Paper MSR-VTT", "MedR")] == 13
    assert paper.loc["LSTM-fusion", ("Paper LSMDC", "R@10")] == 15.9


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
    tex = paths["tex"].read_text()
    assert r"\toprule" in tex and r"5.0 $\pm$ 1.4" in tex and r"JST\_fc" in tex
    csv = pd.read_csv(paths["csv"])
    ours = csv[(csv.source == "ours") & (csv.variant == "JSFusion-noaudio") &
               (csv.direction == "t2v") & (csv.metric == "R@1")]
    assert ours[["mean", "seeds"]].values.tolist() == [[5.0, 2]]
    assert len(csv[csv.source == "paper"]) == 10 * 8
