# Data set → manifest + shard plan.
from vlpipe.datasets import TASK_COLUMNS, annotation_files, check_dataset
from vlpipe.synthetic.world import (
    WorldConfig,
    synthetic_annotation_files,
    synthetic_dataset_options,
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

if "synthetic" in config["dataset"]:

    rule synth_world:
        output:
            annotations=ANNOTATIONS,
            scenes=SCENES,
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
            "python -m vlpipe synth --root {params.root:q} --settings {params.settings:q}"
            " > {log:q} 2>&1"


checkpoint manifest:
    input:
        ANNOTATIONS + SCENES + SYNTHETIC_VIDEOS,
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
        "python -m vlpipe manifest --dataset {params.dataset:q} --tables {params.out:q}"
        " --shard-dir {params.shard_dir:q} --shards {params.shards} > {log:q} 2>&1"
