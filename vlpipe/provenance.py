"""Which code made a result.

``code_identity(step)`` is what every store, model and metrics file records: the vlpipe commit
and whether the library's tree was dirty (None without git), a hash of the whole package's
source, and ``step``'s fingerprint. A step's fingerprint hashes the library modules that the CLI
step (``python -m vlpipe <step>``) imports, found statically, so the workflow can compute it
while it plans, without importing torch: every ``import`` of a vlpipe module anywhere in a
module (lazy ones included), every module named in a string (``"vlpipe.models.wal.model:build"``
in a registry), and every module of a package that a module imports by an f-string
(``f"vlpipe.extractors.{name}"``). Sources are hashed as their syntax trees without docstrings,
so editing a comment, a docstring or a test changes no fingerprint.
"""

from __future__ import annotations

import ast
import copy
import functools
import hashlib
import re
import subprocess
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CLI = "vlpipe.cli"
MODELS = "vlpipe.models"  # the model registry
_NAMED_MODULE = re.compile(r"^(vlpipe(?:\.\w+)+)(?::\w+)?$")


def _module_path(module: str) -> Path | None:
    """The file of a vlpipe module or package, None if there is none."""
    base = PACKAGE_DIR.parent.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@functools.cache
def _tree(module: str) -> ast.Module:
    return ast.parse(_module_path(module).read_text(encoding="utf-8"))


def _without_docstrings(node: ast.AST) -> ast.AST:
    for child in ast.walk(node):
        body = getattr(child, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            child.body = body[1:] or [ast.Pass()]
    return node


def _hash_code(node: ast.AST) -> str:
    """A hash of a syntax tree's code, its docstrings removed in place: docstrings, comments and
    layout do not count."""
    return hashlib.sha256(ast.dump(_without_docstrings(node)).encode()).hexdigest()


def _digest(node: ast.AST) -> str:
    """``_hash_code`` of a copy of ``node`` (a part of a cached tree)."""
    return _hash_code(copy.deepcopy(node))


@functools.cache
def _module_digest(module: str) -> str:
    # A fresh parse, stripped in place: 3x faster than copying the cached tree, and every train
    # and evaluate job records it
    return _hash_code(ast.parse(_module_path(module).read_text(encoding="utf-8")))


@functools.cache
def _module_imports(module: str) -> frozenset[str]:
    return frozenset(_imported(module, _tree(module)))


def _package_modules(package: str) -> list[str]:
    directory = PACKAGE_DIR.parent.joinpath(*package.split("."))
    return sorted(f"{package}.{path.stem}" for path in directory.glob("*.py")
                  if path.stem != "__init__")


def _imported(module: str, node: ast.AST) -> set[str]:
    """The vlpipe modules ``node`` (code of ``module``) imports: with their parent packages, and
    ``from X import Y`` counted as module ``X.Y`` where that is a module."""
    found: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Import):
            found.update(alias.name for alias in child.names)
        elif isinstance(child, ast.ImportFrom):
            if child.level:  # relative: from the module's own package upwards
                parts = module.split(".")[:-child.level]
                base = ".".join(parts + ([child.module] if child.module else []))
            else:
                base = child.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in child.names)
        elif (isinstance(child, ast.Constant) and isinstance(child.value, str)
              and module != __name__):  # this module names modules as data, loads none
            named = _NAMED_MODULE.match(child.value)
            if named:
                found.add(named.group(1))
        elif isinstance(child, ast.JoinedStr) and child.values:
            head = child.values[0]
            if isinstance(head, ast.Constant) and str(head.value).startswith("vlpipe."):
                found.update(_package_modules(str(head.value).rstrip(".")))
    modules = {name for name in found if name.split(".")[0] == "vlpipe" and _module_path(name)}
    for name in list(modules):  # importing a.b.c runs a/__init__ and a/b/__init__ first
        parts = name.split(".")
        modules.update(".".join(parts[:k]) for k in range(1, len(parts)))
    return modules


def _cli_step(step: str) -> list[ast.FunctionDef]:
    """The CLI's function for ``step`` (``text-embed`` → ``_text_embed``) and the CLI functions
    it calls."""
    functions = {node.name: node for node in _tree(CLI).body if isinstance(node, ast.FunctionDef)}
    name = "_" + step.replace("-", "_")
    if name not in functions:
        raise KeyError(f"unknown vlpipe step {step!r}")
    todo, seen = [name], {}
    while todo:
        function = functions[todo.pop()]
        seen[function.name] = function
        todo.extend(node.id for node in ast.walk(function) if isinstance(node, ast.Name)
                    and node.id in functions and node.id not in seen)
    return [seen[name] for name in sorted(seen)]


def _other_families(model: str | None) -> set[str]:
    """The model registry's packages (``vlpipe/models/<family>/``) other than ``model``'s
    (all of them for a step that runs no model)."""
    packages = (PACKAGE_DIR / "models").glob("*/__init__.py")
    return {f"{MODELS}.{path.parent.name}" for path in packages if path.parent.name != model}


@functools.cache
def step_modules(step: str, model: str | None = None) -> tuple[str, ...]:
    """Every vlpipe module the CLI step ``step`` imports, directly or not. The model registry's
    imports are followed into ``model``'s family (a run's) only: a family's code is not part of
    another family's runs, nor of the steps that run no model."""
    skipped = _other_families(model)
    todo = set().union(*(_imported(CLI, function) for function in _cli_step(step)))
    modules: set[str] = set()
    while todo:
        module = todo.pop()
        modules.add(module)
        imported = _module_imports(module)
        if module == MODELS:
            imported = {name for name in imported
                        if not any(name == s or name.startswith(s + ".") for s in skipped)}
        todo |= imported - modules
    return tuple(sorted(modules))


@functools.cache
def step_fingerprint(step: str, model: str | None = None) -> str:
    """A hash of the code the CLI step ``step`` runs (for a run of ``model``): its CLI
    functions and its modules."""
    parts = [_digest(function) for function in _cli_step(step)]
    parts += [f"{module}:{_module_digest(module)}" for module in step_modules(step, model)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@functools.cache
def source_digest() -> str:
    """A hash of every module of the package (as ``step_fingerprint`` hashes them)."""
    modules = sorted(".".join(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
                     .removesuffix(".__init__") for path in PACKAGE_DIR.rglob("*.py"))
    parts = [f"{module}:{_module_digest(module)}" for module in modules]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(PACKAGE_DIR), *args], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def git_state() -> tuple[str | None, bool | None]:
    """The checkout's commit and whether the library (``vlpipe/``) differs from it; (None,
    None) when the package is not in a git checkout."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git("status", "--porcelain", "--", str(PACKAGE_DIR))
    return commit, bool(status)


def code_identity(step: str, model: str | None = None) -> dict:
    """What a step's output records of the code that made it."""
    commit, dirty = git_state()
    return {"commit": commit, "dirty": dirty, "source": source_digest(), "step": step,
            "step_fingerprint": step_fingerprint(step, model)}


def describe_code(identity: dict) -> str:
    """``vlpipe 1a2b3c4d5e6f (+ uncommitted changes)``, or the source hash without git."""
    if identity.get("commit"):
        return f"vlpipe {identity['commit'][:12]}" + (" + uncommitted changes"
                                                       if identity.get("dirty") else "")
    return f"vlpipe source {identity['source']}"
