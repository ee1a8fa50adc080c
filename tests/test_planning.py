"""What the workflow knows from the config alone: a run's inputs and stores, and every
experiment mistake caught (naming the key) before any job runs — without torch."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from vlpipe.experiment_checks import check_experiment, check_tables
from vlpipe.models import FAMILIES, build_model
from vlpipe.models.inputs import FeatureInput, ModelInputs
from vlpipe.planning import (
    InputRef,
    named_paths,
    parse_named_paths,
    report_tables,
    upstream_init,
    upstream_run,
    variant_extractors,
    variant_inputs,
    variant_model_args,
)
from vlpipe.runs import start_from
from vlpipe.tasks import TASK_SPECS

from .helpers import load_configs, subprocess_env

REPO = Path(__file__).resolve().parents[1]
CONFIGS = (("config.yaml",), ("configs/paper.yaml",), ("configs/tours.yaml",),
           ("configs/hollywood2.yaml",), ("configs/characters.yaml",),
           ("configs/stories.yaml",),
           ("config.yaml", "configs/demo-gaze.yaml"),  # overlays on the demo
           ("config.yaml", "configs/demo-ctsan.yaml"))
CONFIG = yaml.safe_load((REPO / "configs/paper.yaml").read_text())  # every ablation


def _check(name: str, change) -> None:
    experiments = copy.deepcopy(CONFIG["experiments"])
    change(experiments[name])
    check_experiment(name, experiments[name], experiments, CONFIG["extractors"])


@pytest.mark.parametrize("paths", CONFIGS)
def test_the_shipped_configs_pass(paths):
    config = load_configs(REPO, paths)
    for name, experiment in config["experiments"].items():
        check_experiment(name, experiment, config["experiments"], config["extractors"])


def test_the_real_data_template_passes_every_check_but_its_datas():
    """configs/lsmdc-characters.yaml names data and weights that cannot be had here, so no dry
    run plans it (`make lint` lints the others): its schema, extractor settings and experiments
    are checked as the Snakefile checks them."""
    from snakemake.utils import validate

    from vlpipe.extractors import check_settings

    config = load_configs(REPO, ("configs/lsmdc-characters.yaml",))
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    for name, settings in config["extractors"].items():
        check_settings(name, settings)
    for name, experiment in config["experiments"].items():
        check_experiment(name, experiment, config["experiments"], config["extractors"])
    variants = config["experiments"]["characters"]["variants"]
    assert {"CiSIN-Face-only", "CiSIN+parts"} <= set(variants)


@pytest.mark.parametrize("name, change, message", [
    ("jsfusion_retrieval", lambda e: e.update(model="jsfuson"),
     r"jsfusion_retrieval.model: unknown model 'jsfuson'"),
    ("jsfusion_retrieval", lambda e: e.update(task="retreival"),
     r"jsfusion_retrieval.task: unknown task 'retreival'"),
    ("jsfusion_retrieval", lambda e: e.update(task="captioning"),
     r"model 'jsfusion' solves .* not 'captioning'"),
    ("jsfusion_retrieval", lambda e: e["model_args"].update(hiden=3),
     r"variants.JSFusion: model_args: unknown key\(s\) \['hiden'\]"),
    ("jsfusion_retrieval", lambda e: e["variants"]["JST_max"].update(chd_pool="min"),
     r"variants.JST_max: model_args of model 'jsfusion': chd_pool='min'"),
    ("jsfusion_retrieval", lambda e: e["model_args"].update(output="word"),
     r"unknown key\(s\) \['output'\]"),  # the task sets JSFusion's head
    ("jsfusion_fill_in_blank", lambda e: e["model_args"].update(d7=32),  # the task sets FIB
     r"d1 \(64\) must equal d7 \(32\)"),
    ("jsfusion_retrieval", lambda e: e["model_args"].update(preset="huge"),
     r"'huge' is not a preset of model 'jsfusion'"),
    ("jsfusion_retrieval", lambda e: e["task_args"].update(beam=3),
     r"task_args: unknown key\(s\) \['beam'\] for task 'retrieval'"),
    ("captioning", lambda e: e["task_args"].update(beam=0), r"task_args.beam: 0 is less"),
    ("wal_correspondence", lambda e: e["task_args"].update(batch_size=61),
     r"task_args.batch_size: 61 is not a multiple of 2"),
    ("jsfusion_retrieval", lambda e: e["variants"]["JSFusion-noaudio"].update(
        features=["resnet512"]), r"JSFusion-noaudio: input\(s\) \['resnet512'\] name no "
                                 r"configured extractor"),
    ("characters", lambda e: e["inputs"].update(persons="resnet152_grid"),
     r"variants.CiSIN: input 'persons': task 'fill_in_characters' reads it as the persons "
     r"extractor's instances, and 'resnet152_grid' is a 'resnet152' extractor"),
    ("captioning", lambda e: e.update(init_from={"run": "jsfusion_retrieval/JSF"}),
     r"init_from.run: 'jsfusion_retrieval/JSF' is no configured"),
    ("captioning", lambda e: e.update(init_from={"run": "jsfusion_retrieval/JSFusion"},
                                      seeds=[0, 7]), r"seed\(s\) \[7\] are not trained"),
    ("captioning", lambda e: e["variants"]["Temp-Attention"].update(
        init_from={"run": "captioning/Temp-Attention-noattention"}),
     r"variants.Temp-Attention: init_from.run: a run cannot start from its own experiment"),
])
def test_config_mistakes_are_named(name, change, message):
    with pytest.raises(ValueError, match=message):
        _check(name, change)


def test_variant_inputs_named_arrays_and_extractor_lists():
    experiment = {"inputs": {"scene": "googlenet/pool5", "motion": "c3d/conv5b",
                             "fovea": "googlenet/inception5b"},
                  "variants": {"GEAN": {}, "scene-only": {"inputs": {"scene": "googlenet"}},
                               "audio": {"features": ["vggish"], "dropout": 0.1}},
                  "model_args": {"dropout": 0.5}}
    assert variant_inputs(experiment, "GEAN") == [
        InputRef("scene", "googlenet", "pool5"), InputRef("motion", "c3d", "conv5b"),
        InputRef("fovea", "googlenet", "inception5b")]
    assert variant_extractors(experiment, "GEAN") == ["googlenet", "c3d"]
    assert variant_inputs(experiment, "scene-only") == [InputRef("scene", "googlenet")]
    assert variant_inputs(experiment, "audio") == [InputRef("vggish", "vggish")]
    assert variant_model_args(experiment, "audio") == {"dropout": 0.1}
    with pytest.raises(KeyError, match="unknown variant 'x'"):
        variant_inputs(experiment, "x")


def test_named_paths_round_trip_and_malformed_items():
    groups = {"resnet152": ["a/0.zarr", "a/1.zarr"], "sentences": ["t.zarr"]}
    assert parse_named_paths(named_paths(groups)) == groups
    with pytest.raises(ValueError, match=r"--stores: expected NAME=PATH, got 'a.zarr'"):
        parse_named_paths(["a.zarr"])


def test_planning_imports_no_torch():
    code = ("import sys, vlpipe.planning, vlpipe.tasks, vlpipe.models; "
            "assert 'torch' not in sys.modules and 'zarr' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env=subprocess_env())


def test_every_task_is_solved_by_a_family_and_describes_its_report():
    solved = {task for family in FAMILIES.values() for task in family.tasks}
    assert solved == set(TASK_SPECS)
    for spec in TASK_SPECS.values():
        assert set(spec.paper_tables) <= set(spec.sections), spec.name


def _inputs(dim: int = 6) -> ModelInputs:
    return ModelInputs((FeatureInput("video", "video", (dim,)),), 5, "score", 20)


def test_a_run_starts_from_an_upstream_model_frozen_or_fine_tuned(tmp_path):
    args = {"word_dim": 4, "encoder_hidden": 4, "d1": 4, "d2": 4, "d3": 4, "d4": 4,
            "conv_channels": 4, "d5": 4, "d6": 4, "d7": 4}
    torch.manual_seed(0)
    upstream = build_model("jsfusion", args, _inputs())
    torch.save({"model": upstream.state_dict()}, tmp_path / "model.pt")
    torch.manual_seed(1)
    model = build_model("jsfusion", args, _inputs())
    copied = start_from(model, str(tmp_path / "model.pt"), freeze=True)
    assert len(copied) == len(upstream.state_dict())
    for (name, ours), theirs in zip(model.state_dict().items(), upstream.state_dict().values(),
                                    strict=True):
        assert torch.equal(ours, theirs), name
    assert not any(p.requires_grad for p in model.parameters())
    model = build_model("jsfusion", args, _inputs())
    start_from(model, str(tmp_path / "model.pt"), freeze=False)
    assert all(p.requires_grad for p in model.parameters())
    other = build_model("wal", {"embed_dim": 4},
                        ModelInputs((FeatureInput("video", "video", (3,)),), 5, "score", 20,
                                    sentence_dim=7))
    with pytest.raises(ValueError, match=r"no weight of .* fits this model"):
        start_from(other, str(tmp_path / "model.pt"), freeze=True)


def test_the_jst_ablations_replace_the_text_blstm_only():
    """The paper (§4.3): JSTfc / JSTlstm replace "BLSTM" — the text encoder; its video encoder
    is a CNN in every row."""
    jsfusion = [e for e in CONFIG["experiments"].values() if e["model"] == "jsfusion"]
    ablations = [e["variants"][name] for e in jsfusion for name in ("JST_fc", "JST_lstm")
                 if name in e.get("variants", {})]
    assert ablations and all(set(a) == {"text_encoder"} for a in ablations)


def test_a_variant_starts_from_its_own_upstream_or_from_scratch():
    """``init_from`` of the experiment is every variant's, unless the variant names its own, or
    ``null``; it is never a model flag."""
    rgp = {"run": "gaze_prediction/RGP", "freeze": True}
    experiment = {"init_from": rgp, "model_args": {"word_dim": 8},
                  "variants": {"GEAN": {}, "GEAN-tuned": {"init_from": {**rgp, "freeze": False}},
                               "GEAN-uniform": {"gaze": "uniform", "init_from": None}}}
    assert upstream_init(experiment, "GEAN") == rgp
    assert upstream_run(experiment, "GEAN-tuned") == ("gaze_prediction", "RGP")
    assert upstream_init(experiment, "GEAN-tuned")["freeze"] is False
    assert upstream_run(experiment, "GEAN-uniform") is None
    assert variant_model_args(experiment, "GEAN-uniform") == {"word_dim": 8, "gaze": "uniform"}
    assert upstream_run({"variants": {"S2VT": None}}, "S2VT") is None


TABLE_EXPERIMENTS = {
    "captioning": {"task": "captioning", "variants": {"Temp-Attention": {}, "S2VT": {}}},
    "gean_captioning": {"task": "captioning", "variants": {"GEAN": {}, "GEAN-uniform": {}}},
    "gaze_prediction": {"task": "gaze", "variants": {"RGP": {}}},
}


def test_report_tables_are_each_experiment_and_the_configured_ones():
    tables = {"captioners": ["captioning", "gean_captioning"]}
    check_tables(tables, TABLE_EXPERIMENTS)
    assert report_tables(TABLE_EXPERIMENTS, tables) == {
        "captioning": ["captioning"], "gean_captioning": ["gean_captioning"],
        "gaze_prediction": ["gaze_prediction"],
        "captioners": ["captioning", "gean_captioning"]}
    assert report_tables(TABLE_EXPERIMENTS, None)["gaze_prediction"] == ["gaze_prediction"]


@pytest.mark.parametrize("tables, message", [
    ({"captioning": ["gean_captioning"]}, r"tables.captioning: an experiment has this name"),
    ({"t": ["captioning", "s2vt"]}, r"tables.t: \['s2vt'\] name no configured experiment"),
    ({"t": ["captioning", "gaze_prediction"]}, r"tables.t: a table shows one task"),
])
def test_table_mistakes_are_named(tables, message):
    with pytest.raises(ValueError, match=message):
        check_tables(tables, TABLE_EXPERIMENTS)


def test_a_table_row_is_one_variant():
    experiments = {**TABLE_EXPERIMENTS,
                   "s2vt": {"task": "captioning", "variants": {"S2VT": {}}}}
    with pytest.raises(ValueError, match=r"variant 'S2VT' is in both 'captioning' and 's2vt'"):
        check_tables({"t": ["captioning", "s2vt"]}, experiments)
