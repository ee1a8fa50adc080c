# Result tables (the paper's numbers beside ours): one per experiment and one per entry of the
# config's `tables`; training curves per experiment. The tables and figures are also the
# results of `snakemake --report` (captions in workflow/report/).


rule report:
    input:
        table_metrics,
    output:
        md=f"{OUT}/report/{{table}}.md",
        tex=f"{OUT}/report/{{table}}.tex",
        csv=report(
            f"{OUT}/report/{{table}}.csv",
            caption="../report/table.rst",
            category="{table}",
            labels={"result": "table"},
        ),
    log:
        f"{LOGS}/report/{{table}}.log",
    localrule: True
    conda:
        ENVS["report"]
    params:
        code=code_of("report"),
        out_dir=lambda wildcards, output: str(Path(output.md).parent),
        settings=table_settings,
    message:
        job_line("report {wildcards.table:q} → {output.md:q}")
    shell:
        "python -m vlpipe --log {log:q} report --metrics {input:q}"
        " --out-dir {params.out_dir:q}"
        " --name {wildcards.table:q} --config {params.settings:q}"


rule curves:
    input:
        lambda w: [log for logs in experiment_train_logs(w).values() for log in logs],
    output:
        report(
            f"{OUT}/report/{{experiment}}-training.png",
            caption="../report/training.rst",
            category="{experiment}",
            labels={"result": "training curves"},
        ),
    log:
        f"{LOGS}/report/{{experiment}}-curves.log",
    localrule: True
    conda:
        ENVS["report"]
    params:
        runs=lambda w: as_json(experiment_train_logs(w)),
        task=lambda w: config["experiments"][w.experiment]["task"],
        code=code_of("curves"),
    message:
        job_line("curves {wildcards.experiment:q} → {output:q}")
    shell:
        "python -m vlpipe --log {log:q} curves --runs {params.runs:q}"
        " --task {params.task:q}"
        " --name {wildcards.experiment:q} --out {output:q}"


rule examples_figure:
    input:
        unpack(examples_inputs),
    output:
        report(
            f"{OUT}/report/{{table}}-examples.png",
            caption="../report/examples.rst",
            category="{table}",
            labels={"result": "test examples"},
        ),
    log:
        f"{LOGS}/report/{{table}}-examples.log",
    localrule: True
    conda:
        ENVS["report"]
    params:
        clips=clips_arg,
        code=code_of("examples_figure"),
    message:
        job_line("examples {wildcards.table:q} → {output:q}")
    shell:
        "python -m vlpipe --log {log:q} examples-figure --metrics {input.metrics:q}"
        " --clips={params.clips:q} --name {wildcards.table:q} --out {output:q}"
