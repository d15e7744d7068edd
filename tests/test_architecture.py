"""The layers of docs/architecture.md hold: each module imports only its own layer or those
above it, stages do not import each other (but for the shared record counter), and click
stays in the command layer."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "any2dataset"
VOCABULARY = {"errors", "record", "streams", "filetypes", "tfrecord_codec", "layout", "workers", "console"}
STAGES = {"read", "shard", "fetch", "subsample", "write", "stats", "mix"}
# __init__: download(), video2dataset(); distribute: their parts as Ray or Spark tasks
COMPOSITION = {"plan", "all_in_one", "video_all_in_one", "distribute", "loader", "__init__"}
COMMANDS = {"cli", "commands", "__main__"}
LAYER = {**{name: 1 for name in VOCABULARY}, **{name: 2 for name in STAGES}, **{name: 3 for name in COMPOSITION},
         **{name: 4 for name in COMMANDS}}
SHARED_BETWEEN_STAGES = {"stats.counting"}


def unit_of(path: Path) -> str:
    """The top-level module or package a file belongs to (`fetch` for fetch/curl.py)."""
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def imports_of(path: Path) -> set[str]:
    """The any2dataset modules a file imports, as dotted names below the package."""
    tree = ast.parse(path.read_text())
    package = list(path.relative_to(PACKAGE).parent.parts)
    found = set()
    for node in _outside_main_blocks(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
                found.update(".".join(target + [alias.name]) if not node.module else ".".join(target)
                             for alias in node.names)
                if not node.module:
                    continue
            elif node.module and node.module.startswith("any2dataset."):
                found.add(node.module.removeprefix("any2dataset."))
        elif isinstance(node, ast.Import):
            found.update(alias.name.removeprefix("any2dataset.") for alias in node.names
                         if alias.name.startswith("any2dataset."))
    return {name for name in found if name}


def _outside_main_blocks(tree: ast.AST):
    """Every node but those under `if __name__ == "__main__":` (an entry point calling its command)."""
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            continue
        yield node
        pending.extend(ast.iter_child_nodes(node))


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__main__.py" and path.parent != PACKAGE:
            continue  # `python -m any2dataset.fetch`: an entry point that only calls its command
        yield path


def test_every_module_is_in_a_layer():
    assert {unit_of(path) for path in modules()} <= set(LAYER)


def test_modules_import_only_their_layer_or_those_above():
    wrong = []
    for path in modules():
        unit = unit_of(path)
        for target in imports_of(path):
            top = target.split(".")[0]
            if top not in LAYER or top == unit:
                continue
            if LAYER[top] > LAYER[unit]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {target} (layer {LAYER[top]} > {LAYER[unit]})")
            elif LAYER[top] == LAYER[unit] == 2 and not any(target.startswith(s) for s in SHARED_BETWEEN_STAGES):
                wrong.append(f"{path.relative_to(PACKAGE)} imports another stage: {target}")
    assert wrong == []


def test_click_only_in_the_command_layer():
    for path in modules():
        if LAYER[unit_of(path)] == 4:
            continue
        text = path.read_text()
        assert "import click" not in text and "from click" not in text, path


def test_the_stdin_to_stdout_stages_start_without_fsspec():
    """a2d-shard and a2d-fetch read stdin and write stdout in most pipelines: they import fsspec
    (0.1-0.2 s here) only when a path or folder needs it."""
    import subprocess
    import sys

    check = ("import sys, any2dataset.shard, any2dataset.commands.shard, any2dataset.commands.fetch; "
             "print(sorted(name for name in sys.modules if name.split('.')[0] == 'fsspec'))")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(PACKAGE.parent), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
