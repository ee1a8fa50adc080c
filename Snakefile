# vlpipe: decode → features → models → evaluation → tables. Rules only wire `python -m vlpipe`.
import shutil

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        table_files(),
        report_figures(),
        text_targets(),
        QUARANTINE,
    localrule: True
    message:
        job_line("all: every table and figure of the config")


onstart:
    # Snakemake copies every update() output (the feature stores) to .snakemake/backups before
    # its job and deletes the copy afterwards; a killed run leaves the copy, and the next backup
    # of that store then fails (FileExistsError). Stores are replaced atomically, so a stale
    # copy holds nothing the store lacks, and this run holds the lock: none is in use.
    shutil.rmtree(".snakemake/backups", ignore_errors=True)


onsuccess:
    print_tables()
