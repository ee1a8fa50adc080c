# Vocabulary → training → evaluation, one job per (experiment, variant, seed).


rule vocab:
    input:
        clips=f"{OUT}/tables/clips.parquet",
    output:
        f"{OUT}/text/vocab.json",
    params:
        min_count=config["text"]["min_count"],
        code=code_of("vocab"),
    log:
        f"{LOGS}/vocab.log",
    message:
        job_line("vocab → {output:q}")
    localrule: True
    conda:
        ENVS["data"]
    shell:
        "python -m vlpipe vocab --clips {input.clips:q} --out {output:q}"
        " --min-count {params.min_count} > {log:q} 2>&1"


rule text_features:
    input:
        clips=f"{OUT}/tables/clips.parquet",
    output:
        directory(TEXT_STORE),
    params:
        settings=as_json(config["text"].get("encoder") or {}),
        code=code_of("text-embed"),
    resources:
        **job_resources("text"),
        device=RUNTIME.get("device", "auto"),
    log:
        f"{LOGS}/text_features.log",
    message:
        job_line("text_features: sentence vectors → {output:q} (log: {log:q})")
    threads: RUNTIME.get("extract_threads", 8)
    conda:
        ENVS["features"]
    shell:
        "python -m vlpipe --threads {threads} text-embed --clips {input.clips:q} --out {output:q}"
        " --settings {params.settings:q} --device {resources.device} > {log:q} 2>&1"


def run_inputs(wildcards):
    task = task_spec(config["experiments"][wildcards.experiment]["task"])
    return {
        "clips": f"{OUT}/tables/clips.parquet",
        "vocab": f"{OUT}/text/vocab.json",
        "task_list": f"{OUT}/tables/tasks/{task.list_name}.parquet",
        "stores": [
            item.split("=", 1)[1]
            for item in experiment_stores(wildcards.experiment, wildcards.variant)
        ],
    }


def train_inputs(wildcards):
    """A run's inputs, and the upstream run's model.pt when it starts from one (init_from):
    retraining the upstream reruns this run, and nothing else."""
    upstream = upstream_model(wildcards.experiment, wildcards.seed)
    return {**run_inputs(wildcards), **({"upstream": upstream} if upstream else {})}


def init_from_arg(wildcards, input):
    """The upstream model.pt, or "" (none)."""
    return input.upstream if "upstream" in input.keys() else ""


RUN_NAME = "{wildcards.experiment:q}/{wildcards.variant:q} seed {wildcards.seed}"  # console


RUN_ARGS = (
    "--experiment {params.experiment:q} --variant {wildcards.variant:q}"
    " --seed {wildcards.seed} --clips {input.clips:q} --vocab {input.vocab:q}"
    " --stores {params.stores:q} --text {params.text:q} --task-list {input.task_list:q}"
)


rule train:
    input:
        unpack(train_inputs),
    output:
        model=f"{OUT}/models/{{experiment}}/{{variant}}/seed-{{seed}}/model.pt",
        log=f"{OUT}/models/{{experiment}}/{{variant}}/seed-{{seed}}/train_log.jsonl",
    params:
        experiment=lambda w: as_json(run_settings(config["experiments"][w.experiment], w.variant)),
        stores=lambda w: experiment_stores(w.experiment, w.variant),
        text=as_json({"embeddings": config["text"].get("embeddings")}),
        out_dir=lambda w, output: str(Path(output.model).parent),
        init_from=init_from_arg,
        code=lambda w: code_of("train", config["experiments"][w.experiment]["model"]),
    resources:
        **job_resources("train"),
        # event files beside train_log.jsonl: how it runs, so a resource (no rerun trigger)
        tensorboard="on" if RUNTIME.get("tensorboard", False) else "off",
    log:
        f"{LOGS}/train/{{experiment}}-{{variant}}-{{seed}}.log",
    message:
        job_line(f"train {RUN_NAME} (log: {{log:q}})")
    threads: RUNTIME.get("train_threads", 1)
    conda:
        ENVS["models"]
    shell:
        "python -m vlpipe --threads {threads} train " + RUN_ARGS + " --out-dir {params.out_dir:q}"
        " --init-from={params.init_from:q} --tensorboard {resources.tensorboard:q}"
        " > {log:q} 2>&1"


rule evaluate:
    input:
        unpack(run_inputs),
        model=rules.train.output.model,
    output:
        f"{OUT}/metrics/{{experiment}}/{{variant}}/seed-{{seed}}.json",
    params:
        experiment=rules.train.params.experiment,
        stores=rules.train.params.stores,
        text=rules.train.params.text,
        dataset=config["dataset"]["name"],
        code=lambda w: code_of("evaluate", config["experiments"][w.experiment]["model"]),
    resources:
        **job_resources("train"),
    log:
        f"{LOGS}/evaluate/{{experiment}}-{{variant}}-{{seed}}.log",
    message:
        job_line(f"evaluate {RUN_NAME} → {{output:q}}")
    threads: RUNTIME.get("train_threads", 1)
    conda:
        ENVS["models"]
    shell:
        "python -m vlpipe --threads {threads} evaluate " + RUN_ARGS + " --name {wildcards.experiment:q}"
        " --model {input.model:q} --dataset {params.dataset:q} --out {output:q} > {log:q} 2>&1"
