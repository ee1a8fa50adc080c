"""Which code made a result: the static import closure of each CLI step (complete: importing
it imports nothing else of vlpipe), fingerprints that ignore docstrings and comments but not
code, and a run's family code kept out of another family's runs."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from vlpipe import provenance
from vlpipe.models import FAMILIES

from .helpers import subprocess_env


def test_fingerprints_ignore_docstrings_and_comments_not_code():
    plain = "def f(x):\n    return x + 1\n"
    documented = '"""Module."""\n\n\ndef f(x):\n    """Add one."""\n    return x + 1  # one\n'
    assert provenance._digest(ast.parse(plain)) == provenance._digest(ast.parse(documented))
    assert provenance._digest(ast.parse(plain)) != provenance._digest(
        ast.parse(plain.replace("+ 1", "+ 2")))
    only_docstring = 'def f():\n    """Nothing else."""\n'
    assert provenance._digest(ast.parse(only_docstring)) == provenance._digest(
        ast.parse("def f():\n    pass\n"))


BUILDS_ON = {"gean": {"rgp"}, "gaze_prior": {"rgp"}, "shallownet": {"rgp"}}  # import rgp code


def test_a_run_imports_its_own_family_and_not_the_others():
    for name, family in FAMILIES.items():
        modules = provenance.step_modules("train", name)
        assert "vlpipe.training.loop" in modules and "vlpipe.runs" in modules
        assert family.builder.split(":")[0] in modules  # named in a registry string
        others = {other for other in FAMILIES if other != name} - BUILDS_ON.get(name, set())
        assert not [m for m in modules if m.split(".")[:3] in
                    [["vlpipe", "models", other] for other in others]], name
    assert "vlpipe.extractors.c3d" not in provenance.step_modules("train", "wal")
    assert "vlpipe.models.rgp.model" in provenance.step_modules("train", "gean")
    assert provenance.step_fingerprint("train", "wal") != provenance.step_fingerprint(
        "train", "jsfusion")


def test_extraction_imports_every_extractor_it_may_build():
    modules = provenance.step_modules("extract")
    for module in ["vlpipe.extractors.image", "vlpipe.extractors.c3d", "vlpipe.extractors.vggish",
                   "vlpipe.extractors.faces", "vlpipe.extractors.persons",
                   "vlpipe.extractors.frames", "vlpipe.decode"]:
        assert module in modules
    assert not [m for m in modules if m.startswith("vlpipe.models.")]


@pytest.mark.parametrize(("step", "model"), [("train", "jsfusion"), ("evaluate", "captioner"),
                                             ("extract", None), ("report", None)])
def test_a_steps_closure_is_complete(step, model):
    """Importing every module of the closure imports no other vlpipe module, except the
    registry's other families (their packages load, but their code is not this step's)."""
    modules = provenance.step_modules(step, model)
    script = ("import importlib, json, sys\n"
              f"for m in {list(modules)!r}: importlib.import_module(m)\n"
              "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'vlpipe')))")
    done = subprocess.run([sys.executable, "-c", script], env=subprocess_env(),
                          capture_output=True, text=True, check=True, timeout=300)
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    others = _closure(f"vlpipe.models.{name}" for name in FAMILIES if name != model)
    assert loaded - set(modules) - others == set()


def _closure(roots) -> set[str]:
    todo, found = set(roots), set()
    while todo:
        module = todo.pop()
        found.add(module)
        todo |= provenance._imported(module, provenance._tree(module)) - found
    return found


def test_code_identity_names_commit_and_step():
    identity = provenance.code_identity("vocab")
    assert identity["step"] == "vocab" and len(identity["step_fingerprint"]) == 16
    assert identity["step_fingerprint"] == provenance.step_fingerprint("vocab")
    if identity["commit"]:  # a git checkout
        assert len(identity["commit"]) == 40 and isinstance(identity["dirty"], bool)
        assert provenance.describe_code(identity).startswith(f"vlpipe {identity['commit'][:12]}")
    with pytest.raises(KeyError, match="unknown vlpipe step 'trian'"):
        provenance.step_modules("trian")
