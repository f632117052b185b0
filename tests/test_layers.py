"""One direction per layer. Each layer imports only the layers below it, shown two ways:

- every module of a layer imports in a fresh process where the layers above it cannot be imported at all;
- read from the source, imports inside functions included, the project's modules form no import cycle, and an import
  inside a function is only there to keep a heavy numeric library (PyTorch, matplotlib, scikit-learn) out of the
  processes that do not need it (the web server), or in the AppConfig's ready() to connect signal receivers.

The layers and which package or module is in which are the layer map in docs/architecture.md, read here.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("training", "gan", "curation", "fer_site", "benchmarks")
ARCHITECTURE = ROOT / "docs" / "architecture.md"
# Bottom to top. Which package or module is in which layer is the map in docs/architecture.md (read below).
LAYER_ORDER = ("training", "gan", "settings", "core", "job handlers", "jobs", "interfaces", "site", "benchmarks")


def layer_map(text=None):
    """[(package or module, layer)] from the table between the layer map's markers in docs/architecture.md."""
    text = ARCHITECTURE.read_text() if text is None else text
    begin, end = text.index("<!-- layer map: begin -->"), text.index("<!-- layer map: end -->")
    rows = []
    for line in text[begin:end].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rows.append((cells[0].strip("`"), cells[1]))
    return rows


def _layers():
    """[(layer, [prefixes])] bottom to top, from the map."""
    rows = layer_map()
    return [(layer, [name for name, of in rows if of == layer]) for layer in LAYER_ORDER]


LAYERS = _layers()
# Libraries an import inside a function may keep out of the web process.
HEAVY = ("torch", "torchvision", "matplotlib", "sklearn")
# The app's AppConfig, whose ready() imports the modules of the signal receivers it connects: Django imports apps.py
# before the models those modules import, so ready() is the only place (the imports still count for cycles).
APP_READY = ("curation.apps",)


def _modules():
    """{module name: path} of the project's Python modules (no migrations, no tests)."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if "migrations" in rel.parts or "__pycache__" in rel.parts:
                continue
            name = ".".join(rel.with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _matches(name, prefix):
    return name == prefix or name.startswith(prefix + ".")


def layer_of(name):
    """The index in LAYERS of the layer of the map's longest row that `name` is or is inside, or None."""
    hits = [(len(prefix), index) for index, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
            if _matches(name, prefix)]
    return max(hits)[1] if hits else None


def _packages():
    return {name for name, path in _modules().items() if path.name == "__init__.py"} | {
        ".".join(path.parent.relative_to(ROOT).parts) for path in _modules().values()}


def test_the_layer_map_names_every_package_and_nothing_that_does_not_exist():
    rows = layer_map()
    names = [name for name, _ in rows]
    assert not [name for name, layer in rows if layer not in LAYER_ORDER], "a layer the test does not know"
    assert len(names) == len(set(names)), "a package or module listed twice"
    assert not sorted(_packages() - set(names)), f"packages missing from the map: {sorted(_packages() - set(names))}"
    gone = [name for name in names if name not in _modules()]
    assert not gone, f"the map names packages or modules that do not exist: {gone}"
    assert not [name for name in _modules() if layer_of(name) is None]


IMPORT_LAYER = r'''
import importlib, os, sys
blocked, allowed, modules = sys.argv[1].split(","), sys.argv[2].split(","), sys.argv[3].split(",")

def layer_above(name):
    hits = [p for p in blocked if name == p or name.startswith(p + ".")]
    keeps = [p for p in allowed if name == p or name.startswith(p + ".")]
    return hits and max(map(len, hits)) > max(map(len, keeps), default=-1)

class LayerAbove:
    def find_spec(self, name, path=None, target=None):
        if layer_above(name):
            raise ImportError(f"{name} is in a layer above this one")
        return None

sys.meta_path.insert(0, LayerAbove())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fer_site.settings.test")
if any(m.startswith(("curation", "benchmarks", "fer_site.urls", "fer_site.wsgi", "fer_site.asgi")) for m in modules):
    import django
    django.setup()
for name in modules:
    importlib.import_module(name)
'''


@pytest.mark.parametrize("index", range(len(LAYERS)), ids=[name for name, _ in LAYERS])
def test_a_layer_imports_with_the_layers_above_it_unimportable(index, tmp_path):
    modules = [name for name in _modules() if layer_of(name) == index]
    # Prefixes of the layers above, and of this layer and those below (a longer prefix wins: curation.jobs.errors
    # is core although curation.jobs.runner is above it).
    above = [p for _, prefixes in LAYERS[index + 1:] for p in prefixes]
    below = [p for _, prefixes in LAYERS[: index + 1] for p in prefixes]
    # A private SQLite (nothing is written); the production settings module needs a key to import.
    env = {"PATH": "/usr/bin:/bin", "FER_DATA_DIR": str(tmp_path), "DJANGO_SECRET_KEY": "k" * 64,
           "DJANGO_ALLOWED_HOSTS": "localhost"}
    done = subprocess.run([sys.executable, "-c", IMPORT_LAYER, ",".join(above) or "-", ",".join(below),
                           ",".join(modules)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"layer {LAYERS[index][0]!r} reaches above itself:\n{done.stderr[-3000:]}"


def _imports(modules):
    """{module: [(imported project module, at top level?)]} read from the source."""

    def resolve(name):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        top = {id(node) for node in tree.body}
        found = []
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            for name in names:
                target = resolve(name)
                if target and target != mod:
                    found.append((target, id(node) in top or _in_module_level_block(tree, node)))
        graph[mod] = found
    return graph


def _in_module_level_block(tree, node):
    """An import under a module-level `if`/`try` (not inside a function or class body)."""
    for stmt in tree.body:
        if isinstance(stmt, (ast.If, ast.Try)) and any(child is node for child in ast.walk(stmt)):
            return True
    return False


def _heavy(modules, graph):
    """Modules that import a HEAVY library at their top level, themselves or through project modules."""
    direct = set()
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            if any(n.split(".")[0] in HEAVY for n in names):
                direct.add(mod)
    heavy, changed = set(direct), True
    while changed:
        changed = False
        for mod, found in graph.items():
            if mod not in heavy and any(t in heavy for t, top in found if top):
                heavy.add(mod)
                changed = True
    return heavy


def test_no_import_cycles_counting_imports_inside_functions():
    modules = _modules()
    graph = {mod: {t for t, _ in found} for mod, found in _imports(modules).items()}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_an_import_inside_a_function_only_keeps_heavy_libraries_out():
    modules = _modules()
    graph = _imports(modules)
    heavy = _heavy(modules, graph)
    needless = sorted({f"{mod} imports {target} inside a function" for mod, found in graph.items()
                       for target, top in found if not top and target not in heavy and mod not in APP_READY})
    assert not needless, "\n".join(needless)
