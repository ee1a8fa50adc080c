# Data set → manifest + shard plan.
from vlpipe.datasets import TASK_COLUMNS, annotation_files, check_dataset
from vlpipe.datasets.characters import character_files
from vlpipe.datasets.gaze import check_gaze_settings, gaze_files
from vlpipe.synthetic.characters import character_settings
from vlpipe.synthetic.world import (
    WorldConfig,
    synthetic_annotation_files,
    synthetic_dataset_options,
    synthetic_gaze_files,
    synthetic_gaze_settings,
    synthetic_videos,
)

if "synthetic" in config["dataset"]:
    # Not yet written when the workflow plans: the world's files follow from its settings
    # (the subtitles adapter would list the tour videos on disk).
    WORLD = WorldConfig(**config["dataset"]["synthetic"])
    WORLD_OPTIONS = synthetic_dataset_options(config["dataset"]["format"])
    if config["dataset"].get("options", {}) != WORLD_OPTIONS:
        raise ValueError(f"config dataset.options: a synthetic world is read with {WORLD_OPTIONS}")
    ANNOTATIONS = [
        f"{ROOT}/{name}" for name in synthetic_annotation_files(config["dataset"]["format"], WORLD)
    ]
    SYNTHETIC_VIDEOS = [f"{ROOT}/{name}" for name in synthetic_videos(WORLD)]
else:
    check_dataset(config["dataset"]["format"], ROOT, config["dataset"].get("options", {}))
    ANNOTATIONS = annotation_files(
        config["dataset"]["format"], ROOT, config["dataset"].get("options", {})
    )
    SYNTHETIC_VIDEOS = []
# the synthetic world's ground truth: its activity labels (multiple-choice protocol "lsmdc")
SCENES = [f"{ROOT}/annotations/scenes.jsonl"] if "synthetic" in config["dataset"] else []

# Eye-tracking data (dataset.gaze): the fixation files, read into the gaze store (RGP's targets).
GAZE = config["dataset"].get("gaze")
if GAZE is not None and "synthetic" in config["dataset"]:
    if not WORLD.gaze_subjects:
        raise ValueError(
            "config dataset.gaze: the synthetic world has no gaze "
            "(set dataset.synthetic.gaze_subjects)"
        )
    WORLD_GAZE = synthetic_gaze_settings(WORLD, config["dataset"]["format"])
    if GAZE.setdefault("fixations", WORLD_GAZE) != WORLD_GAZE:
        raise ValueError(
            f"config dataset.gaze.fixations: a synthetic world's gaze is read with {WORLD_GAZE}"
        )
    GAZE_FILES = [
        f"{ROOT}/{name}" for name in synthetic_gaze_files(WORLD, config["dataset"]["format"])
    ]
elif GAZE is not None:
    if "fixations" not in GAZE:
        raise ValueError("config dataset.gaze.fixations: say where the fixation files are")
    check_gaze_settings(GAZE["fixations"])
    GAZE_FILES = [f"{ROOT}/{name}" for name in gaze_files(ROOT, GAZE["fixations"])]
else:
    GAZE_FILES = []
# Who is who (dataset.characters): the Fill-in the Characters files, tracks and mentions, read
# into the fill_in_characters task list by the manifest step (CiSIN's data).
CHARACTERS = config["dataset"].get("characters")
if CHARACTERS is not None and "synthetic" in config["dataset"]:
    if not WORLD.cast:
        raise ValueError(
            "config dataset.characters: the synthetic world has no characters "
            "(set dataset.synthetic.cast)"
        )
    if CHARACTERS != character_settings():
        raise ValueError(
            f"config dataset.characters: a synthetic world's characters are read with "
            f"{character_settings()}"
        )
CHARACTER_FILES = [f"{ROOT}/{name}" for name in character_files(CHARACTERS or {"fill_in": {}})]
if CHARACTERS is not None and "synthetic" not in config["dataset"]:
    _missing = [name for name in CHARACTER_FILES if not Path(name).is_file()]
    if _missing:
        raise ValueError(f"config dataset.characters: file(s) not found: {_missing}")
for _name, _experiment in config["experiments"].items():
    if _experiment["task"] == "fill_in_characters" and CHARACTERS is None:
        raise ValueError(
            f"experiments.{_name}: task 'fill_in_characters' reads who is who; configure "
            "dataset.characters (docs/data.md)"
        )
    if task_spec(_experiment["task"]).targets and GAZE is None:
        raise ValueError(
            f"experiments.{_name}: task {_experiment['task']!r} predicts gaze; "
            "configure the eye-tracking data as dataset.gaze (docs/data.md)"
        )

if "synthetic" in config["dataset"]:

    rule synth_world:
        output:
            annotations=ANNOTATIONS,
            scenes=SCENES,
            gaze=GAZE_FILES,
            characters=CHARACTER_FILES,
            videos=SYNTHETIC_VIDEOS,
        log:
            f"{LOGS}/synth_world.log",
        localrule: True
        conda:
            ENVS["data"]
        params:
            code=code_of("synth"),
            # dataset.root, found from an output (<root>/annotations/scenes.jsonl)
            root=lambda wildcards, output: str(Path(output.scenes[0]).parent.parent),
            settings=as_json(config["dataset"]["synthetic"]),
        message:
            job_line(f"synth_world: {WORLD.n_clips} clips → {{params.root:q}}")
        shell:
            "python -m vlpipe --log {log:q} synth --root {params.root:q}"
            " --settings {params.settings:q}"


checkpoint manifest:
    input:
        ANNOTATIONS + SCENES + CHARACTER_FILES + SYNTHETIC_VIDEOS,
    output:
        manifest=update(LAYOUT.manifest_table),
        clips=update(LAYOUT.clips_table),
        tasks=[update(LAYOUT.task_list(name)) for name in TASK_COLUMNS],
        shards=[update(shard_file(shard)) for shard in SHARDS],
    log:
        f"{LOGS}/manifest.log",
    localrule: True
    conda:
        ENVS["data"]
    params:
        # a function: the adapter options may hold braces (video_pattern "{movie}/{clip_id}.avi")
        # that Snakemake would otherwise read as wildcards
        dataset=lambda wildcards: as_json(config["dataset"]),
        videos=lambda wildcards: videos_digest(),
        code=code_of("manifest"),
        shard_dir=lambda wildcards, output: str(Path(output.shards[0]).parent),
        shards=config["shards"],
        out=lambda wildcards, output: str(Path(output.manifest).parent),
    message:
        job_line("manifest: clip and task tables → {params.out:q}, {params.shards} shard plan(s)")
    shell:
        "python -m vlpipe --log {log:q} manifest --dataset {params.dataset:q}"
        " --tables {params.out:q}"
        " --shard-dir {params.shard_dir:q} --shards {params.shards}"


if GAZE is not None:

    rule gaze_maps:
        input:
            clips=LAYOUT.clips_table,
            fixations=GAZE_FILES,
        output:
            directory(LAYOUT.gaze_store),
        log:
            f"{LOGS}/gaze_maps.log",
        conda:
            ENVS["data"]
        params:
            # dataset.root: the fixation files' paths in dataset.gaze are relative to it
            root=lambda wildcards: ROOT,
            settings=as_json(GAZE),
            code=code_of("gaze-maps"),
        message:
            job_line("gaze_maps: ground-truth gaze maps → {output:q}")
        shell:
            "python -m vlpipe --log {log:q} gaze-maps --clips {input.clips:q}"
            " --root {params.root:q}"
            " --settings {params.settings:q} --out {output:q}"
