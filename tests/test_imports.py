"""No import cycle in itero, counting the imports inside functions too: every module can be read
on its own, and a lazy import never hides a loop that a refactor would turn into a crash. And the
config tree imports only schemas."""

import ast
import sys
from pathlib import Path

ITERO = Path(__file__).resolve().parents[1] / "itero"


def module_name(path: Path) -> str:
    parts = path.relative_to(ITERO.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_level(tree: ast.AST):
    """The nodes that run when the module is imported: everything outside function bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))


def imports_of(path: Path, modules: dict[str, Path], on_import_only: bool = False) -> set[str]:
    """The itero modules ``path`` imports; ``from package import submodule`` is the submodule.
    ``on_import_only``: those imported when the module is, not the lazy imports inside functions."""
    me = module_name(path)
    package = me.split(".") if path.name == "__init__.py" else me.split(".")[:-1]
    found = set()
    tree = ast.parse(path.read_text())
    for node in module_level(tree) if on_import_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            subs = {f"{target}.{a.name}" for a in node.names} & modules.keys()
            found.update(subs)
            if len(subs) < len(node.names) and target in modules:
                found.add(target)
    return found - {me}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
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
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_in_itero():
    modules = {module_name(p): p for p in ITERO.rglob("*.py")}
    graph = {m: imports_of(p, modules) for m, p in modules.items()}
    assert len(graph) > 100 and sum(map(len, graph.values())) > 300  # the walk really sees the imports
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# The config tree is schemas: loading a config (``itero check``, the dry run, ``--help``) imports no
# model, peft or generation code. The section files import only one another and the errors.
SCHEMAS = {"itero.schema", "itero.config_loading", "itero.model_config", "itero.reward_config", "itero.task_config"}
CONFIG_MAY_IMPORT = SCHEMAS | {"itero.algorithms"}  # each algorithm's own config section, by name


def test_the_config_imports_only_schemas():
    modules = {module_name(p): p for p in ITERO.rglob("*.py")}
    found = imports_of(ITERO / "config.py", modules, on_import_only=True)
    assert "itero.schema" in found and found <= CONFIG_MAY_IMPORT
    for name in SCHEMAS:
        assert imports_of(modules[name], modules, on_import_only=True) <= SCHEMAS | {"itero.errors"}, name


def test_lazy_imports_are_told_apart_from_module_level_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ITERO", tmp_path / "itero")
    module = tmp_path / "itero" / "m.py"
    module.parent.mkdir()
    module.write_text("import itero.a\n\n\nclass C:\n    def f(self):\n        import itero.b\n")
    modules = {"itero.a": module, "itero.b": module}
    assert imports_of(module, modules, on_import_only=True) == {"itero.a"}
    assert imports_of(module, modules) == {"itero.a", "itero.b"}
