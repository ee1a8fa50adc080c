# One extraction job per (extractor, shard), writing one Zarr store.


def planned_shard(wildcards):
    checkpoints.manifest.get()  # the shard plan exists, with its current mtime
    return shard_file(wildcards.shard)


rule extract:
    input:
        shard=planned_shard,
    output:
        store=update(directory(f"{OUT}/features/{{extractor}}/shard-{{shard}}.zarr")),
    params:
        settings=lambda w: as_json(config["extractors"][w.extractor]),
    resources:
        # How extraction runs, not what it computes: resources, unlike params, never trigger
        # a rerun when they change.
        device=RUNTIME.get("device", "auto"),
        batch_frames=RUNTIME.get("batch_frames", 64),
        num_workers=RUNTIME.get("num_workers", 1),
    log:
        f"{LOGS}/extract/{{extractor}}-{{shard}}.log",
    threads: RUNTIME.get("extract_threads", 8)
    shell:
        "python -m vlpipe --threads {threads} extract --extractor {wildcards.extractor} --shard {input.shard:q}"
        " --store {output.store:q} --settings {params.settings:q}"
        " --device {resources.device} --batch-frames {resources.batch_frames}"
        " --num-workers {resources.num_workers} > {log:q} 2>&1"
