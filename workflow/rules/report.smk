# Result tables per experiment: the paper's numbers beside ours.


def experiment_metrics(wildcards):
    experiment = config["experiments"][wildcards.experiment]
    return [
        metrics_file(wildcards.experiment, variant, seed)
        for variant in experiment["variants"]
        for seed in experiment["seeds"]
    ]


rule report:
    input:
        experiment_metrics,
    output:
        expand(f"{OUT}/report/{{{{experiment}}}}.{{ext}}", ext=["md", "tex", "csv"]),
    params:
        out_dir=f"{OUT}/report",
        settings=lambda w: as_json(
            {
                "experiment": config["experiments"][w.experiment],
                "dataset": config["dataset"],
                "extractors": config["extractors"],
            }
        ),
    log:
        f"{LOGS}/report/{{experiment}}.log",
    localrule: True
    conda:
        ENVS["report"]
    shell:
        "python -m vlpipe report --metrics {input:q} --out-dir {params.out_dir:q}"
        " --name {wildcards.experiment:q} --config {params.settings:q} > {log:q} 2>&1"
