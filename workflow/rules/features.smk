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
        runtime=as_json(config.get("runtime", {})),
    log:
        f"{LOGS}/extract/{{extractor}}-{{shard}}.log",
    shell:
        "python -m vlpipe extract --extractor {wildcards.extractor} --shard {input.shard:q}"
        " --store {output.store:q} --settings {params.settings:q}"
        " --runtime {params.runtime:q} > {log:q} 2>&1"
