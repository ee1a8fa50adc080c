# Feature extraction: one job per (extraction job, shard). By default every extractor is its own
# job, so changing one extractor's settings reruns only its stores. Extractors given the same
# `job:` in the config share one job per shard that decodes each clip once for all of them.


for job, members in extraction_jobs().items():

    rule:
        name:
            f"extract_{job}"
        input:
            shard=planned_shard,
        output:
            **{m: update(directory(feature_store(m, "{shard}"))) for m in members},
        log:
            f"{LOGS}/extract/{job}-{{shard}}.log",
        conda:
            ENVS["features"]
        threads: RUNTIME.get("extract_threads", 8)
        resources:
            # How extraction runs, not what it computes: resources, unlike params, never
            # trigger a rerun when they change.
            **job_resources("extract"),
            device=RUNTIME.get("device", "auto"),
            batch_frames=RUNTIME.get("batch_frames", 64),
            num_workers=RUNTIME.get("num_workers", 1),
            bad_clips=RUNTIME.get("bad_clips", "fail"),
        params:
            settings=as_json({m: extractor_settings(m) for m in members}),
            code=code_of("extract"),
            stores=lambda w, output: [f"{name}={path}" for name, path in output.items()],
        message:
            job_line(
                f"extract_{job} shard {{wildcards.shard}}: {', '.join(members)} (log: {{log:q}})"
            )
        shell:
            "python -m vlpipe --threads {threads} --log {log:q} extract --shard {input.shard:q}"
            " --stores {params.stores:q} --settings {params.settings:q}"
            " --device {resources.device} --batch-frames {resources.batch_frames}"
            " --num-workers {resources.num_workers} --bad-clips {resources.bad_clips}"


rule quarantine:
    input:
        [feature_store(name, shard) for name in config["extractors"] for shard in SHARDS],
    output:
        QUARANTINE,
    log:
        f"{LOGS}/quarantine.log",
    localrule: True
    conda:
        ENVS["data"]
    params:
        code=code_of("quarantine"),
        stores=[
            f"{name}={feature_store(name, shard)}"
            for name in config["extractors"]
            for shard in SHARDS
        ],
    message:
        job_line("quarantine: clips left out as bad input → {output:q}")
    shell:
        "python -m vlpipe --log {log:q} quarantine --stores {params.stores:q} --out {output:q}"
