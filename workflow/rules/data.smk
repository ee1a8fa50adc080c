# Data set → manifest + shard plan.
import functools

from vlpipe.datasets import TASK_COLUMNS, annotation_files, check_dataset, read_dataset
from vlpipe.manifest import files_digest
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
        f"{ROOT}/{name}"
        for name in synthetic_annotation_files(config["dataset"]["format"], WORLD)
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
            ANNOTATIONS,
            SCENES,
            SYNTHETIC_VIDEOS,
        params:
            code=code_of("synth"),
            root=ROOT,
            settings=as_json(config["dataset"]["synthetic"]),
        log:
            f"{LOGS}/synth_world.log",
        message:
            job_line(f"synth_world: {WORLD.n_clips} clips → {{params.root:q}}")
        localrule: True
        conda:
            ENVS["data"]
        shell:
            "python -m vlpipe synth --root {params.root:q} --settings {params.settings:q}"
            " > {log:q} 2>&1"


@functools.cache
def videos_digest():
    """(path, size, mtime) of every video of an external data set, as one digest: a params value
    of the manifest, so a changed, added or removed video reruns it (Snakemake's params trigger)
    and the shard plan then rewrites only the shards that hold it. Generated (synthetic) videos
    are instead inputs: Snakemake tracks its own outputs."""
    if "synthetic" in config["dataset"]:
        return "generated"
    dataset = config["dataset"]
    tables = read_dataset(dataset["format"], dataset["root"], **dataset.get("options", {}))
    return files_digest(tables.clips["video_path"])


checkpoint manifest:
    input:
        ANNOTATIONS + SCENES + SYNTHETIC_VIDEOS,
    output:
        update(f"{OUT}/tables/manifest.parquet"),
        update(f"{OUT}/tables/clips.parquet"),
        [update(f"{OUT}/tables/tasks/{name}.parquet") for name in TASK_COLUMNS],
        [update(shard_file(shard)) for shard in SHARDS],
    params:
        # a function: the adapter options may hold braces (video_pattern "{movie}/{clip_id}.avi")
        # that Snakemake would otherwise read as wildcards
        dataset=lambda wildcards: as_json(config["dataset"]),
        videos=lambda wildcards: videos_digest(),
        code=code_of("manifest"),
        shard_dir=f"{OUT}/shards",
        shards=config["shards"],
        out=f"{OUT}/tables",
    log:
        f"{LOGS}/manifest.log",
    message:
        job_line("manifest: clip and task tables → {params.out:q}, {params.shards} shard plan(s)")
    localrule: True
    conda:
        ENVS["data"]
    shell:
        "python -m vlpipe manifest --dataset {params.dataset:q} --tables {params.out:q}"
        " --shard-dir {params.shard_dir:q} --shards {params.shards} > {log:q} 2>&1"
