# Feature extraction: one job per (extraction job, shard). By default every extractor is its own
# job, so changing one extractor's settings reruns only its stores. Extractors given the same
# `job:` in the config share one job per shard that decodes each clip once for all of them.


def planned_shard(wildcards):
    checkpoints.manifest.get()  # the shard plan exists, with its current mtime
    return shard_file(wildcards.shard)


def extraction_jobs():
    """job name → the extractors it runs (config order)."""
    jobs = {}
    for name, settings in config["extractors"].items():
        jobs.setdefault(settings.get("job", name), []).append(name)
    return jobs


def extractor_settings(name):
    """What an extractor's features depend on (`job` only says where it runs)."""
    return {k: v for k, v in config["extractors"][name].items() if k != "job"}


for job, members in extraction_jobs().items():

    rule:
        name:
            f"extract_{job}"
        input:
            shard=planned_shard,
        output:
            **{m: update(directory(feature_store(m, "{shard}"))) for m in members},
        params:
            settings=as_json({m: extractor_settings(m) for m in members}),
            code=code_of("extract"),
            stores=lambda w, output: [f"{name}={path}" for name, path in output.items()],
        resources:
            # How extraction runs, not what it computes: resources, unlike params, never
            # trigger a rerun when they change.
            **job_resources("extract"),
            device=RUNTIME.get("device", "auto"),
            batch_frames=RUNTIME.get("batch_frames", 64),
            num_workers=RUNTIME.get("num_workers", 1),
            bad_clips=RUNTIME.get("bad_clips", "fail"),
        log:
            f"{LOGS}/extract/{job}-{{shard}}.log",
        message:
            job_line(
                f"extract_{job} shard {{wildcards.shard}}: {', '.join(members)} (log: {{log:q}})"
            )
        threads: RUNTIME.get("extract_threads", 8)
        conda:
            ENVS["features"]
        shell:
            "python -m vlpipe --threads {threads} extract --shard {input.shard:q}"
            " --stores {params.stores:q} --settings {params.settings:q}"
            " --device {resources.device} --batch-frames {resources.batch_frames}"
            " --num-workers {resources.num_workers} --bad-clips {resources.bad_clips}"
            " > {log:q} 2>&1"


rule quarantine:
    input:
        [feature_store(name, shard) for name in config["extractors"] for shard in SHARDS],
    output:
        QUARANTINE,
    params:
        code=code_of("quarantine"),
        stores=[
            f"{name}={feature_store(name, shard)}"
            for name in config["extractors"]
            for shard in SHARDS
        ],
    log:
        f"{LOGS}/quarantine.log",
    message:
        job_line("quarantine: clips left out as bad input → {output:q}")
    localrule: True
    conda:
        ENVS["data"]
    shell:
        "python -m vlpipe quarantine --stores {params.stores:q} --out {output:q} > {log:q} 2>&1"
