# Data set → manifest + shard plan.
from vlpipe.datasets import read_dataset

ANNOTATIONS = [f"{ROOT}/{name}" for name in config["dataset"]["options"]["annotations"]]

if "synthetic" in config["dataset"]:
    SYNTHETIC_VIDEOS = [
        f"{ROOT}/videos/video{i}.mp4" for i in range(config["dataset"]["synthetic"]["n_clips"])
    ]

    rule synth_world:
        output:
            ANNOTATIONS,
            f"{ROOT}/annotations/scenes.jsonl",
            SYNTHETIC_VIDEOS,
        params:
            root=ROOT,
            settings=as_json(config["dataset"]["synthetic"]),
        log:
            f"{LOGS}/synth_world.log",
        shell:
            "python -m vlpipe synth --root {params.root:q} --settings {params.settings:q}"
            " > {log:q} 2>&1"


def dataset_files(wildcards):
    """The annotations and every video, so that a changed video makes the manifest rerun (the
    shard plan then rewrites only the shards that hold it)."""
    if "synthetic" in config["dataset"]:
        return ANNOTATIONS + SYNTHETIC_VIDEOS
    dataset = config["dataset"]
    clips = read_dataset(dataset["format"], dataset["root"], **dataset.get("options", {}))
    return ANNOTATIONS + list(clips["video_path"])


checkpoint manifest:
    input:
        dataset_files,
    output:
        update(f"{OUT}/tables/manifest.parquet"),
        update(f"{OUT}/tables/clips.parquet"),
        [update(shard_file(shard)) for shard in SHARDS],
    params:
        dataset=as_json(config["dataset"]),
        shard_dir=f"{OUT}/shards",
        shards=config["shards"],
        out=f"{OUT}/tables",
    log:
        f"{LOGS}/manifest.log",
    shell:
        "python -m vlpipe manifest --dataset {params.dataset:q} --tables {params.out:q}"
        " --shard-dir {params.shard_dir:q} --shards {params.shards} > {log:q} 2>&1"
