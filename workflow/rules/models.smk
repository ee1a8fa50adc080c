# Vocabulary (and concept words) → training → evaluation, one job per (experiment, variant, seed).
from vlpipe.text.concepts import DEFAULT_SIZE as CONCEPTS


rule vocab:
    input:
        clips=LAYOUT.clips_table,
    output:
        LAYOUT.vocab,
    log:
        f"{LOGS}/vocab.log",
    localrule: True
    conda:
        ENVS["data"]
    params:
        min_count=config["text"]["min_count"],
        code=code_of("vocab"),
    message:
        job_line("vocab → {output:q}")
    shell:
        "python -m vlpipe --log {log:q} vocab --clips {input.clips:q} --out {output:q}"
        " --min-count {params.min_count}"


rule concepts:
    input:
        clips=LAYOUT.clips_table,
        vocab=LAYOUT.vocab,
    output:
        LAYOUT.concepts,
    log:
        f"{LOGS}/concepts.log",
    localrule: True
    conda:
        ENVS["data"]
    params:
        size=config["text"].get("concepts", CONCEPTS),
        code=code_of("concepts"),
    message:
        job_line("concepts: {params.size:q} concept words → {output:q}")
    shell:
        "python -m vlpipe --log {log:q} concepts --clips {input.clips:q} --vocab {input.vocab:q}"
        " --out {output:q} --size {params.size:q}"


rule text_features:
    input:
        clips=LAYOUT.clips_table,
    output:
        directory(TEXT_STORE),
    log:
        f"{LOGS}/text_features.log",
    conda:
        ENVS["features"]
    threads: RUNTIME.get("extract_threads", 8)
    resources:
        **job_resources("text"),
        device=RUNTIME.get("device", "auto"),
    params:
        settings=as_json(config["text"].get("encoder") or {}),
        code=code_of("text-embed"),
    message:
        job_line("text_features: sentence vectors → {output:q} (log: {log:q})")
    shell:
        "python -m vlpipe --threads {threads} --log {log:q} text-embed"
        " --clips {input.clips:q} --out {output:q}"
        " --settings {params.settings:q} --device {resources.device}"


RUN_NAME = "{wildcards.experiment:q}/{wildcards.variant:q} seed {wildcards.seed}"  # console


rule train:
    input:
        unpack(train_inputs),
    output:
        model=f"{OUT}/models/{{experiment}}/{{variant}}/seed-{{seed}}/model.pt",
        log=f"{OUT}/models/{{experiment}}/{{variant}}/seed-{{seed}}/train_log.jsonl",
    log:
        f"{LOGS}/train/{{experiment}}-{{variant}}-{{seed}}.log",
    conda:
        ENVS["models"]
    threads: RUNTIME.get("train_threads", 1)
    resources:
        **job_resources("train"),
        # event files beside train_log.jsonl: how it runs, so a resource (no rerun trigger)
        tensorboard="on" if RUNTIME.get("tensorboard", False) else "off",
    params:
        experiment=lambda w: as_json(run_settings(config["experiments"][w.experiment], w.variant)),
        stores=lambda w: experiment_stores(w.experiment, w.variant),
        text=as_json({"embeddings": config["text"].get("embeddings")}),
        out_dir=lambda w, output: str(Path(output.model).parent),
        init_from=init_from_arg,
        concepts=concepts_arg,
        code=lambda w: code_of("train", config["experiments"][w.experiment]["model"]),
    message:
        job_line(f"train {RUN_NAME} (log: {{log:q}})")
    shell:
        "python -m vlpipe --threads {threads} --log {log:q} train"
        " --experiment {params.experiment:q} --variant {wildcards.variant:q}"
        " --seed {wildcards.seed} --clips {input.clips:q} --vocab {input.vocab:q}"
        " --stores {params.stores:q} --text {params.text:q} --task-list {input.task_list:q}"
        " --concepts={params.concepts:q} --out-dir {params.out_dir:q}"
        " --init-from={params.init_from:q} --tensorboard {resources.tensorboard:q}"


rule evaluate:
    input:
        unpack(run_inputs),
        model=rules.train.output.model,
    output:
        f"{OUT}/metrics/{{experiment}}/{{variant}}/seed-{{seed}}.json",
    log:
        f"{LOGS}/evaluate/{{experiment}}-{{variant}}-{{seed}}.log",
    conda:
        ENVS["models"]
    threads: RUNTIME.get("train_threads", 1)
    resources:
        **job_resources("train"),
    params:
        experiment=rules.train.params.experiment,
        stores=rules.train.params.stores,
        text=rules.train.params.text,
        dataset=config["dataset"]["name"],
        concepts=concepts_arg,
        code=lambda w: code_of("evaluate", config["experiments"][w.experiment]["model"]),
    message:
        job_line(f"evaluate {RUN_NAME} → {{output:q}}")
    shell:
        "python -m vlpipe --threads {threads} --log {log:q} evaluate"
        " --experiment {params.experiment:q} --variant {wildcards.variant:q}"
        " --seed {wildcards.seed} --clips {input.clips:q} --vocab {input.vocab:q}"
        " --stores {params.stores:q} --text {params.text:q} --task-list {input.task_list:q}"
        " --concepts={params.concepts:q} --name {wildcards.experiment:q}"
        " --model {input.model:q} --dataset {params.dataset:q} --out {output:q}"
