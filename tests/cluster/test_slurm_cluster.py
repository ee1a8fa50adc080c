"""The tiny pipeline through a real SLURM scheduler (`make test-cluster`, which starts the
one-node cluster of tests/cluster/slurm.sh): every non-local rule runs as a SLURM job, the tables
equal a local run's, and a second run submits nothing."""

from __future__ import annotations

import copy
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.test_pipeline import TINY_CONFIG, snakemake

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "profiles" / "slurm"
# What a one-node cluster needs beyond the profile: no accounting database (so no account and
# the job states from squeue), jobs that fit the node (2 cores, a few GB), and a first status
# check after 1 s instead of 40 (the jobs here take seconds).
CLUSTER_CONFIG = {"runtime": {"extract_threads": 2, "resources": {
    group: {"mem_mb": 2000} for group in ("extract", "text", "train")}}}
CLUSTER_ARGS = ["--profile", str(PROFILE), "--slurm-no-account", "--slurm-status-command",
                "squeue", "--slurm-init-seconds-before-status-checks", "1",
                # the plugin's clean-up of successful jobs' logs also removes the (still empty)
                # log folders of pending jobs, which then fail to start and are retried
                "--slurm-keep-successful-logs"]
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: .*/slurm_logs/rule_(\w+)/")


def planned_jobs(plan: str) -> Counter:
    """rule → job count from a dry run's 'Job stats' table."""
    table = plan.split("Job stats:")[1].split("total")[0]
    return Counter({m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)})


def slurm_states(job_ids: list[str]) -> dict[str, str]:
    out = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i|%T",
                          "--jobs", ",".join(job_ids)], capture_output=True, text=True,
                         check=True).stdout
    return dict(line.split("|") for line in out.split())


def local_rules() -> set[str]:
    rules = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    names = set()
    for path in rules:
        for block in re.split(r"^(?=\s*(?:rule|checkpoint) \w+:)", path.read_text(),
                              flags=re.M):
            name = re.match(r"\s*(?:rule|checkpoint) (\w+):", block)
            if name and "localrule: True" in block:
                names.add(name[1])
    return names


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    idle = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True,
                          text=True)
    if "idle" not in idle.stdout and "mix" not in idle.stdout:
        pytest.fail(f"no SLURM node is up (sinfo: {idle.stdout or idle.stderr!r}); "
                    "`make test-cluster` starts one")
    config = copy.deepcopy(TINY_CONFIG)
    config["runtime"].update(CLUSTER_CONFIG["runtime"])
    dirs = {}
    for name in ("local", "slurm"):
        dirs[name] = tmp_path_factory.mktemp(name)
        (dirs[name] / "config.yaml").write_text(yaml.safe_dump(config))
    local = snakemake(dirs["local"])  # --cores 2 here; local rules only on SLURM
    plan = snakemake(dirs["slurm"], *CLUSTER_ARGS, "-n")
    run = snakemake(dirs["slurm"], *CLUSTER_ARGS)
    rerun = snakemake(dirs["slurm"], *CLUSTER_ARGS)
    return dirs, local, plan, run, rerun


def test_every_non_local_rule_ran_as_a_slurm_job(runs):
    _, _, plan, run, _ = runs
    submitted = {job_id: rule for job_id, rule in SUBMITTED.findall(run)}
    states = slurm_states(list(submitted))
    completed = Counter(rule for job_id, rule in submitted.items()
                        if states.get(job_id) == "COMPLETED")
    expected = Counter({rule: n for rule, n in planned_jobs(plan).items()
                        if rule not in local_rules()})
    assert {"extract_av", "train", "evaluate"} <= set(expected)
    assert completed == expected, (completed, states)
    assert not set(submitted.values()) & local_rules()


def test_the_tables_equal_a_local_runs(runs):
    dirs, _, _, _, _ = runs
    tables = sorted((dirs["local"] / "results" / "tiny" / "report").glob("*.csv"))
    assert len(tables) == len(TINY_CONFIG["experiments"]) + len(TINY_CONFIG["tables"])
    for table in tables:
        on_slurm = dirs["slurm"] / "results" / "tiny" / "report" / table.name
        assert on_slurm.read_text() == table.read_text(), table.name


def test_a_second_run_submits_nothing(runs):
    _, _, _, _, rerun = runs
    assert "Nothing to be done" in rerun
    assert not SUBMITTED.search(rerun)
