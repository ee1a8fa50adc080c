"""The papers' published numbers (../shared/spec/paper_tables.md), shown beside ours.

Tables live as CSV files in ``data/``, one per task and direction (each task spec's
``paper_tables``), with columns
``<DATASET>_<metric>``; rows are named as our variants are, so the paper's row and ours share a
line. A direction the paper does not publish has no file. JSFusion (ECCV 2018 / thesis ch. 5):

- retrieval (Table 2 / 5.2): text→video only (``t2v``), R@k in %, MedR in ranks; the typos the
  spec notes are fixed (LSMDC R@5 of JSFusion is 21.2 and of -noaudio 20.9);
- multiple choice: accuracy in % on LSMDC and MSR-VTT;
- fill in the blank: accuracy in % on LSMDC (the spec's "noattention" / "noaudio" are our
  JSFusion-noattention / JSFusion-noaudio), with the thesis's Base-SAN (Table 4.1, right: 34.5)
  beside the CT-SAN row the JSFusion paper has.

Watch and Learn (WAL; Tables 1 and 2), correspondence on ApartmenTour (100 test pairs), mAP and
R@5 ×100 in both directions: video search (``t2v``, a sentence queries the videos;
``wal_video_search.csv``) and sentence search (``v2t``, a video queries the sentences;
``wal_sentence_search.csv``). Random, PVSE and SCAN LSE+AVG are paper-only rows; the paper's
WAL variants are named as ours: WAL, WAL-att, WAL-att-adv (BVF=4, the default) → WAL-att-adv,
(BVF=16) → WAL-att-adv-BVF16, (BVF=64) → WAL-att-adv-BVF64, (G=softmax) → WAL-att-adv-softmax,
(in=concat) → WAL-att-adv-concat, (in=p_ADV) → WAL-att-adv-pADV, WAL-att (triplet) →
WAL-att-triplet, WAL-att-adv (triplet) → WAL-att-adv-triplet.

Captioning (thesis ch. 3, Tables 3.4 and 3.5): BLEU-1/2/3, METEOR, ROUGE-L and CIDEr on LSMDC
and VAS, ×100 (the thesis prints them on a 0–1 scale); S2VT (S2VT+GNet) and Temp-Attention are
the baselines without gaze; GEAN is GEAN+GNet+C3D+Scene with its gaze predictor RGP and
GEAN-uniform the same without RGP (its METEOR is Table 3.5's uniform map's); GEAN-random,
-central and -peripheral are Table 3.5's other fixed maps, METEOR only. CT-SAN's movie
description (thesis ch. 4, Table 4.1, LSMDC16 public test, ×100): its own column group
(``LSMDC16_*``), as its S2VT row is another run than ch. 3's; CT-SAN and Base-SAN (no
detector, no semantic attention) are our variants' names, the challenge's other entries are
left out.

Gaze prediction (thesis ch. 3, Tables 3.2 and 3.3): Sim, CC, shuffled AUC and Judd AUC on VAS
and Hollywood2 EM, on the thesis's 0–1 scale; Uniform and Central bias are Table 3.3's AUC-only
rows (Hollywood2: Random, a flat map, 0.500 = our Uniform; Central Bias 0.840; its SF+MF+CB
0.871 and Human 0.936 are other methods' and are left out).

Storytelling (thesis ch. 7, ×100 as printed): sentence level (``tapm_sentence.csv``), Tables
7.3 and 7.4 on the LSMDC 2019 public test — the TAPM ablations (TAPM-A, +Cap, +VisualA,
-Split, -A+Split) and each language model's three columns as rows: ``<LM>`` (Adaptation),
``<LM>-A`` (NoAdaptation), ``<LM>-Split`` (JointAdaptation), GPT-2's being TAPM's; set level
(``tapm_set.csv``), Table 7.1's public test (CIDEr, METEOR) and Table 7.2 on VIST, with Table
7.3's VIST ablations as their own column group (its TAPM row, 8.3 CIDEr, is another setting
than Table 7.2's 13.8).

Who is who (thesis ch. 6, accuracies in %): Fill in the Characters (``cisin_fill_in.csv``),
Table 6.3 on LSMDC 2019's blinded test with Table 6.2's text re-id column on M-VAD Names beside
it (the same decision, mention pairs; its w/o Grounding & Visual row is CiSIN-Text-only, its
w/o Text CiSIN-Visual-only, its w/o Visual a paper-only row); grounding (``cisin_grounding.csv``,
Table 6.2 left: w/o motion, w/o Attr & Text, w/o Text = CiSIN-Visual-only); video re-id
(``cisin_video_reid.csv``, Table 6.1, whose CiSIN rows add face, human box, body parts, text:
ours read the box alone until faces and body parts are read).
"""

from __future__ import annotations

from importlib.resources import files

import pandas as pd

from vlpipe.tasks.specs import task_spec

DATASET_LABELS = {"LSMDC": "Paper LSMDC", "MSRVTT": "Paper MSR-VTT",
                  "APARTMENTOUR": "Paper ApartmenTour", "VAS": "Paper VAS",
                  "HOLLYWOOD2": "Paper Hollywood2 EM", "LSMDC16": "Paper LSMDC16 (ch. 4)",
                  "LSMDC19": "Paper LSMDC 2019", "VIST": "Paper VIST",
                  "VISTABL": "Paper VIST (Table 7.3)", "MVADNAMES": "Paper M-VAD Names"}


def paper_table(task: str, direction: str) -> pd.DataFrame:
    """The paper's rows for ``task`` in ``direction``, indexed by model, columns a (source,
    metric) MultiIndex; empty (no rows, no columns) where the paper has no table for that
    direction. An unknown ``task`` is a KeyError."""
    name = task_spec(task).paper_tables.get(direction)
    if name is None:
        return pd.DataFrame(index=pd.Index([], name="model"),
                            columns=pd.MultiIndex.from_arrays([[], []]))
    with files("vlpipe.report").joinpath("data", name).open() as handle:
        frame = pd.read_csv(handle, index_col="model")
    frame.columns = pd.MultiIndex.from_tuples(
        [(DATASET_LABELS[c.split("_", 1)[0]], c.split("_", 1)[1]) for c in frame.columns])
    return frame
