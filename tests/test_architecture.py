"""The import rule, read from the sources (AST), never by importing them.

game -> runtime, game -> worldgen, nothing back: runtime must not import pygame, numpy, worldgen or game;
worldgen must not import pygame, runtime or game, and only worldgen/bake.py may import Dask or Zarr; the
game modules that VM jobs import (and the game modules those import) must not import pygame. The scenes
talk to a host interface, not to the app.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

BANNED = {
    "runtime": {"pygame", "numpy", "worldgen", "game"},
    "worldgen": {"pygame", "runtime", "game"},
}
# The bake's libraries: only worldgen/bake.py may import them, and importing worldgen must not.
BAKE_LIBRARIES = {"dask", "distributed", "zarr", "numcodecs"}
BAKE_MODULE = "worldgen/bake.py"


def imported_modules(source: str, filename: str) -> list[tuple[int, str]]:
    """Top-level names of every absolute import in ``source``, with their line numbers."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value.split(".")[0]))
    return found


def violations(package: str) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        where = path.relative_to(ROOT).as_posix()
        banned = BANNED[package] | (BAKE_LIBRARIES if where != BAKE_MODULE else set())
        for lineno, name in imported_modules(path.read_text(encoding="utf-8"), str(path)):
            if name in banned:
                out.append(f"{where}:{lineno} imports {name}")
    return out


@pytest.mark.parametrize("package", sorted(BANNED))
def test_package_respects_the_import_rule(package: str) -> None:
    assert (ROOT / package / "__init__.py").exists()
    assert violations(package) == []


def test_the_checker_sees_each_import_form() -> None:
    src = (
        "import pygame.display\nfrom numpy import zeros\nimport importlib\nimportlib.import_module('game')\n"
    )
    assert [name for _, name in imported_modules(src, "<test>")] == ["pygame", "numpy", "importlib", "game"]
    assert imported_modules("from . import sibling\n", "<test>") == []


# -- the game: what VM jobs import, and the scene hand-off --------------------------------------------

GAME = ROOT / "game"
JOB_MODULES = ("worlddata", "terrain", "palette", "chunkjob")
"""The game modules VM jobs import by name (the world job, the chunk job and what colours them)."""
SCENES = ("loading_scene", "world_scene", "error_scene", "endless_scene")


def game_imports(module: str) -> set[str]:
    """The ``game.*`` modules ``game/<module>.py`` imports (``from game import x`` counts as game.x)."""
    tree = ast.parse((GAME / f"{module}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("game.")}
        elif isinstance(node, ast.ImportFrom) and node.module == "game":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("game."):
            found.add(node.module.split(".")[1])
    return found


def test_the_modules_vm_jobs_import_never_import_pygame() -> None:
    reached: set[str] = set()
    todo = list(JOB_MODULES)
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo += game_imports(module)
    assert set(JOB_MODULES) <= reached and "streamer" not in reached
    found = []
    for module in sorted(reached):
        path = GAME / f"{module}.py"
        for lineno, name in imported_modules(path.read_text(encoding="utf-8"), str(path)):
            if name == "pygame":
                found.append(f"game/{module}.py:{lineno} imports pygame")
    assert found == []


def test_scenes_talk_to_the_host_and_only_the_app_picks_the_next_scene() -> None:
    scene_classes = {"LoadingScene", "WorldScene", "ErrorScene", "EndlessScene"}
    for module in SCENES:
        imports = game_imports(module)
        assert "app" not in imports, f"game/{module}.py imports the app"
        assert not imports & set(SCENES), f"game/{module}.py imports another scene"
    built = []
    for path in sorted(GAME.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in scene_classes
            ):
                built.append(path.stem)
    assert set(built) == {"app"}


def test_the_bake_module_is_the_one_exception() -> None:
    # test_package_respects_the_import_rule checks every other worldgen module; this one does import them.
    bake = imported_modules((ROOT / BAKE_MODULE).read_text(encoding="utf-8"), BAKE_MODULE)
    assert {"dask", "distributed", "zarr"} <= {name for _, name in bake}


@pytest.mark.parametrize("module", ["worldgen", "runtime"])
def test_importing_a_package_loads_neither_dask_nor_zarr(module: str) -> None:
    found = f"sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(BAKE_LIBRARIES)}))"
    code = f"import sys, {module}; print({found})"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- the runtime's own structure (issue: one protocol, named roles) ------------------------------------

RUNTIME = ROOT / "runtime"
MESSAGE_NAMES = {"message", "reply", "request", "received", "init", "wire", "config"}


def _runtime_sources() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(RUNTIME.glob("*.py"))}


def test_messages_are_read_by_name_never_by_position() -> None:
    # Only _protocol knows the wire layout; everywhere else a message is a record read by field name.
    found = []
    for module, tree in _runtime_sources().items():
        if module == "_protocol":
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Subscript)
                and isinstance(node.value, ast.Name)
                and node.value.id in MESSAGE_NAMES
            ):
                found.append(f"runtime/{module}.py:{node.lineno} indexes {node.value.id}")
    assert found == []


def test_the_runtime_has_no_import_circle_and_no_module_over_about_400_lines() -> None:
    sources = _runtime_sources()
    graph: dict[str, set[str]] = {}
    for module, tree in sources.items():
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names = [node.module] if node.module else [alias.name for alias in node.names]
                edges |= {name.split(".")[0] for name in names if name and name.split(".")[0] in sources}
        graph[module] = edges - {module}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(
            nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})) for nxt in graph[start]
        )

    assert [module for module in graph if reaches(module, module, {module})] == []
    lines = {module: len((RUNTIME / f"{module}.py").read_text().splitlines()) for module in sources}
    assert {module: n for module, n in lines.items() if n > 420} == {}  # "about 400"


def test_the_vm_template_imports_only_what_a_worker_needs() -> None:
    # The package's names load on first use, so the template that forks VMs (started with each first VM)
    # does not pay for the pool and the managers: VM start was ~20 ms slower when it did.
    code = "import sys, runtime._template; print(sorted(m for m in sys.modules if m.startswith('runtime.')))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split("'")[1::2])
    assert "runtime._worker" in loaded
    assert loaded.isdisjoint(
        {"runtime._pool", "runtime._compute_thread", "runtime._manager", "runtime._launcher"}
    )


def test_the_public_names_load_on_first_use_and_misspelt_ones_say_so() -> None:
    code = (
        "import runtime, sys; assert 'runtime._pool' not in sys.modules; "
        "from runtime import ComputePool, VMDiedError; "
        "print(ComputePool.__module__, VMDiedError.__module__); "
        "runtime.ComputeTread"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["runtime._pool", "runtime._errors"]
    assert "AttributeError: module 'runtime' has no attribute 'ComputeTread'" in done.stderr
