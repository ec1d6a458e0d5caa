import ast
import subprocess
import sys
from pathlib import Path

import pytest


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.split()


def test_import_is_light():
    """`import mne_synapse` (and its datasets) must not pull in torch & co."""
    heavy = ["torch", "diffusers", "open_clip", "braindecode", "skorch", "transformers"]
    loaded = _run(
        "import sys, mne_synapse, mne_synapse.datasets; "
        f"print(*[m for m in {heavy!r} if m in sys.modules])"
    )
    assert loaded == []


def test_stage2_modules_do_not_import_braindecode():
    """Only the Stage-1 autoencoders are braindecode models (it takes seconds to import)."""
    loaded = _run("import sys, mne_synapse.generator, mne_synapse.models as m; "
                  "m.EEGAdapter, m.install_eeg_processors, m.RECIPES, m.count_parameters; "
                  "print('braindecode' in sys.modules)")
    assert loaded == ["False"]


def test_lazy_public_names():
    out = _run("import mne_synapse as m; print(m.SynapseEncoder.__name__, "
               "m.CLIPEmbedder.__name__, m.__version__)")
    assert out[:2] == ["SynapseEncoder", "CLIPEmbedder"]


def test_cli_help_and_bad_verb():
    help_out = subprocess.run([sys.executable, "-m", "mne_synapse.cli", "--help"],
                              capture_output=True, text=True)
    assert help_out.returncode == 0 and "demo" in help_out.stdout
    bad = subprocess.run([sys.executable, "-m", "mne_synapse.cli", "nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    from mne_synapse.utils import get_cache_dir

    monkeypatch.setenv("MNE_SYNAPSE_CACHE", str(tmp_path / "c"))
    assert get_cache_dir("x") == tmp_path / "c" / "x"
    assert (tmp_path / "c" / "x").is_dir()


# -- the layout's rules (see doc/method.rst, "The package") -----------------------------
PACKAGE = Path(__file__).parents[1] / "mne_synapse"
MAX_LINES = 450
MAX_ESTIMATOR_LINES = 400


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path):
    """Every module ``path`` imports, at any depth of its code (absolute dotted names)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # `from . import _inputs` imports a module
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _file_of(candidate) is not None else base)
    return found


def _file_of(module):
    if not module.startswith("mne_synapse"):
        return None
    rel = Path(*module.split(".")[1:])
    if not rel.parts:
        return PACKAGE / "__init__.py"
    for path in (PACKAGE / rel / "__init__.py", PACKAGE / rel.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _graph():
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _touches(imports, prefixes):
    return sorted(m for m in imports
                  if any(m == p or m.startswith(p + ".") for p in prefixes))


def _reachable(graph, module):
    """What importing ``module`` can load, each with an import path that gets there.

    The transitive closure of its imports. An edge is any import at any depth of
    a module's code, a lazy one inside a function too (the graph does not tell
    them apart, and a lazy import is still a dependency: calling that function
    loads it). Importing ``a.b.c`` also runs the packages ``a`` and ``a.b``.
    Modules outside mne_synapse end a path.
    """
    paths, todo = {module: [module]}, [module]
    while todo:
        current = todo.pop(0)  # breadth first: the shortest path to each
        for name in sorted(graph.get(current, ())):
            parts = name.split(".")
            for found in (".".join(parts[:n]) for n in range(1, len(parts) + 1)):
                if found not in paths:
                    paths[found] = paths[current] + [found]
                    todo.append(found)
    del paths[module]
    return {found: " -> ".join(path) for found, path in paths.items()}


ESTIMATORS = ["mne_synapse.encoder", "mne_synapse.generator", "mne_synapse._training",
              "mne_synapse._finetuning", "mne_synapse._persistence", "mne_synapse._checkpoint",
              "mne_synapse._hub", "mne_synapse._param_checks"]


# The one exception: the Stage-1 autoencoders are braindecode models, so the
# module they share imports braindecode's model base class (and nothing else of it).
ALLOWED = {"mne_synapse.models.eeg_module": {"braindecode.models.base"}}


@pytest.mark.parametrize("where, forbidden", [
    ("mne_synapse.models", ["sklearn", "skorch", "mne", "braindecode", "mne_synapse.encoder",
                            "mne_synapse.generator", "mne_synapse.datasets",
                            "mne_synapse.utils", "mne_synapse._persistence"]),
    ("mne_synapse.datasets", ["mne_synapse.models", *ESTIMATORS]),
    ("mne_synapse.metrics", ESTIMATORS),
])
def test_import_rules(where, forbidden):
    """models/ is torch only; datasets/ knows no models or estimators; metrics no estimators.

    Checked on what a module reaches, not only on what it imports itself (see
    :func:`_reachable`): ``datasets`` calling a helper that imports ``models``
    breaks the rule as much as importing ``models`` directly. The ALLOWED
    imports are edges taken out of the graph (so what braindecode loads is not
    followed). A broken rule is reported as the import path that breaks it.
    """
    graph = {module: imports - ALLOWED.get(module, set())
             for module, imports in _graph().items()}
    broken = {}
    for module in graph:
        if module == where or module.startswith(where + "."):
            reached = _reachable(graph, module)
            broken.update({reached[bad]: bad for bad in _touches(reached, forbidden)})
    assert broken == {}


def test_import_rules_follow_imports_of_imports():
    """The rule check sees a forbidden module two imports away (a made-up graph)."""
    graph = {"mne_synapse.datasets.x": {"mne_synapse._inputs"},
             "mne_synapse._inputs": {"numpy", "mne_synapse.models.official_autoencoder"}}
    reached = _reachable(graph, "mne_synapse.datasets.x")
    assert _touches(reached, ["mne_synapse.models"]) == [
        "mne_synapse.models", "mne_synapse.models.official_autoencoder"]
    assert reached["mne_synapse.models.official_autoencoder"] == (
        "mne_synapse.datasets.x -> mne_synapse._inputs -> mne_synapse.models.official_autoencoder")
    assert _touches(reached, ["numpy"]) == ["numpy"]


def test_nothing_imports_the_cli():
    users = [m for m, imports in _graph().items()
             if not m.startswith("mne_synapse.cli") and _touches(imports, ["mne_synapse.cli"])]
    assert users == []


def test_no_import_cycles():
    graph = {m: {i for i in imports if _file_of(i) is not None}
             for m, imports in _graph().items()}
    state, cycles = {}, []

    def visit(module, stack):
        state[module] = "open"
        for nxt in sorted(graph.get(module, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_library_files_are_readable_in_one_sitting():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_estimators_stay_short():
    """The two estimators hold params, fit, transform / generate (issue 13: < 400 lines);
    checks, saved folders, cards and the authors' files live in their own modules."""
    for name in ("encoder.py", "generator.py"):
        assert len((PACKAGE / name).read_text().splitlines()) < MAX_ESTIMATOR_LINES, name


def test_the_layout_shows_the_method():
    """data -> Stage 1 -> Stage 2 -> images -> scores, in the folder listing."""
    for name in ("datasets", "models", "miniature", "metrics", "cli", "interop"):
        assert (PACKAGE / name / "__init__.py").is_file(), name
    for name in ("encoder.py", "generator.py", "_persistence.py", "clip.py", "evaluation.py",
                 "viz.py"):
        assert (PACKAGE / name).is_file(), name
