# vlpipe: decode → features → models → evaluation → tables. Rules only wire `python -m vlpipe`.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        report_tables(),
        text_targets(),
    default_target: True
    localrule: True


onsuccess:
    print_tables()
