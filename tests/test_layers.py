"""The arrows of the house (docs/architecture.md): no import cycles, face3d never imports editing
(the command-line entry aside), inference never imports training, no reaching into another
module's private names, no file over 500 lines. Imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("face3d", "editing")
ENTRY = {"face3d.cli", "face3d.demo"}  # the command-line entry: the only modules above both packages
TRAINING = ("face3d.train", "editing.train")
MAX_LINES = 500


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages (``__init__`` as the package)."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def imports_of(name: str, source: str, is_package: bool) -> list[tuple[str, list[str]]]:
    """``(target module, imported names)`` of every import in ``source`` (any depth: functions too),
    relative imports resolved."""
    base_parts = name.split(".") if is_package else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                keep = base_parts[: len(base_parts) - node.level + 1]
                mod = ".".join(keep + ([mod] if mod else []))
            found.append((mod, [a.name for a in node.names]))
    return found


def resolve(target: str, modules) -> str | None:
    """The module ``target`` names (or the nearest enclosing one), None outside the packages."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def import_graph(files: dict[str, Path]) -> tuple[dict[str, set[str]], list[str]]:
    """Module -> modules it imports (``from pkg import mod`` counts as importing ``pkg.mod``),
    and the private names imported from other modules (``"a -> b._name"``)."""
    graph, private = {m: set() for m in files}, []
    for m, path in files.items():
        for target, names in imports_of(m, path.read_text(), path.name == "__init__.py"):
            for t in [target] + [f"{target}.{n}" for n in names]:
                r = resolve(t, files)
                if r and r != m:
                    graph[m].add(r)
            if resolve(target, files):
                private += [f"{m} -> {target}.{n}" for n in names if n.startswith("_") and n != "__version__"]
    return graph, private


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _in(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def wrong_way(graph: dict[str, set[str]]) -> list[str]:
    """face3d modules (the entry aside) importing editing."""
    return [
        f"{m} -> {t}"
        for m, ts in sorted(graph.items())
        if _in(m, ("face3d",)) and m not in ENTRY
        for t in sorted(ts)
        if _in(t, ("editing",))
    ]


def inference_to_training(graph: dict[str, set[str]]) -> list[str]:
    """Modules outside the training subpackages (the entry aside) importing one of them."""
    return [
        f"{m} -> {t}"
        for m, ts in sorted(graph.items())
        if not _in(m, TRAINING) and m not in ENTRY
        for t in sorted(ts)
        if _in(t, TRAINING)
    ]


# ------------------------------------------------------------------------------- the checks
@pytest.fixture(scope="module")
def graph_and_private():
    return import_graph(module_files())


def test_no_import_cycles(graph_and_private):
    assert cycles(graph_and_private[0]) == []


def test_face3d_never_imports_editing(graph_and_private):
    assert wrong_way(graph_and_private[0]) == []


def test_inference_never_imports_training(graph_and_private):
    assert inference_to_training(graph_and_private[0]) == []


def test_no_module_imports_another_modules_private_names(graph_and_private):
    assert graph_and_private[1] == []


def test_benchmarks_and_figures_never_import_training():
    """Only ``scripts/rebuild`` (and the tuning studies of ``scripts/experiments``) may train."""
    bad = []
    for folder in ("bench", "figures"):
        for path in sorted((ROOT / "scripts" / folder).glob("*.py")):
            for target, _ in imports_of(path.stem, path.read_text(), False):
                if _in(target, TRAINING):
                    bad.append(f"{path.relative_to(ROOT)} -> {target}")
    assert bad == []


def test_no_python_file_over_500_lines():
    files = [p for d in (*PACKAGES, "scripts", "tests") for p in (ROOT / d).rglob("*.py")]
    long = [f"{p.relative_to(ROOT)}: {p.read_text().count(chr(10))}" for p in files]
    assert [s for s in long if int(s.rsplit(": ", 1)[1]) > MAX_LINES] == []


# ------------------------------------------------------ the checker catches what it should
def _write(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return module_files(root)


def test_checker_finds_a_cycle_through_a_function_level_import(tmp_path):
    files = _write(
        tmp_path,
        {
            "face3d/__init__.py": "",
            "face3d/a.py": "from face3d.b import x\n",
            "face3d/b.py": "def f():\n    from face3d import a\n",
            "editing/__init__.py": "",
        },
    )
    assert cycles(import_graph(files)[0]) == [["face3d.a", "face3d.b"]]


def test_checker_finds_a_cycle_through_a_package_init(tmp_path):
    files = _write(
        tmp_path,
        {
            "face3d/__init__.py": "",
            "face3d/fit/__init__.py": "from face3d.fit.pipeline import fit\n",
            "face3d/fit/pipeline.py": "from face3d.regress import infer\n",
            "face3d/regress/__init__.py": "",
            "face3d/regress/infer.py": "from face3d.fit import fit\n",
            "editing/__init__.py": "",
        },
    )
    (cycle,) = cycles(import_graph(files)[0])
    assert cycle == ["face3d.fit", "face3d.fit.pipeline", "face3d.regress.infer"]


def test_checker_finds_wrong_way_training_and_private_imports(tmp_path):
    files = _write(
        tmp_path,
        {
            "face3d/__init__.py": "",
            "face3d/cli.py": "import editing.api\nfrom face3d.train import loop\n",
            "face3d/fit.py": "def f():\n    import editing.api\n",
            "face3d/infer.py": "from .train.loop import step\n",
            "face3d/train/__init__.py": "",
            "face3d/train/loop.py": "from face3d.fit import _helper\n",
            "editing/__init__.py": "",
            "editing/api.py": "",
        },
    )
    graph, private = import_graph(files)
    assert wrong_way(graph) == ["face3d.fit -> editing.api"]  # the entry (cli) may
    assert inference_to_training(graph) == ["face3d.infer -> face3d.train.loop"]
    assert private == ["face3d.train.loop -> face3d.fit._helper"]
