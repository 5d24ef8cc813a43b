"""One distribution, one top-level import name (`ipvae`), and imports that flow one way between its floors."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# folder on disk -> the package it installs as (pyproject.toml [tool.setuptools.package-dir])
PACKAGE_DIRS = {"ipvae": "ipvae", "train": "ipvae.train", "export": "ipvae.export",
                "lava_models": "ipvae.lava"}
GROUND, TRAIN, EXPORT, LAVA, TOP = range(5)  # the pipeline's order: a module imports its own floor or lower ones
GROUND_MODULES = ("ipvae", "ipvae.errors", "ipvae.fileio", "ipvae.images", "ipvae.data")
TOP_MODULES = ("ipvae.cli", "ipvae.demo", "ipvae.api", "ipvae.paper")  # paper: the experiments drive every stage


def floor(module: str) -> int:
    def within(prefixes) -> bool:
        return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)

    if within(TOP_MODULES):
        return TOP
    if within(("ipvae.lava",)):
        return LAVA
    if within(("ipvae.export",)):
        return EXPORT
    if within(("ipvae.train",)):
        return TRAIN
    assert within(GROUND_MODULES), f"{module} belongs to no floor: add it to tests/test_namespace.py"
    return GROUND


def module_name(path: Path) -> str:
    relative = path.relative_to(REPO_ROOT)
    for folder, package in sorted(PACKAGE_DIRS.items(), key=lambda item: -len(item[0])):
        if relative.is_relative_to(folder):
            parts = list(relative.relative_to(folder).with_suffix("").parts)
            return ".".join([package, *(parts if parts[-1] != "__init__" else parts[:-1])])
    raise AssertionError(path)


def imported_modules(path: Path) -> set[str]:
    """Every ipvae module a file imports, at the top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return {name for name in names if name == "ipvae" or name.startswith("ipvae.")}


def test_imports_flow_one_way_between_the_floors():
    sources = [p for folder in ("ipvae", "train", "export", "lava_models") for p in (REPO_ROOT / folder).rglob("*.py")]
    assert len(sources) > 40
    upward = []
    for path in sources:
        importer = module_name(path)
        for imported in imported_modules(path):
            if floor(imported) > floor(importer):
                upward.append(f"{importer} -> {imported}")
    assert not upward, upward


def test_the_distribution_installs_one_top_level_name():
    distribution = importlib.metadata.distribution("ipvae-toolkit")
    assert distribution.read_text("top_level.txt").split() == ["ipvae"]
    import ipvae.export.hdf5
    import ipvae.lava.pipeline
    import ipvae.train.trainer

    for module in (ipvae.train.trainer, ipvae.export.hdf5, ipvae.lava.pipeline):
        assert Path(module.__file__).resolve().is_relative_to(REPO_ROOT) or "site-packages" in module.__file__


def test_a_user_project_with_its_own_train_and_export_does_not_clash(tmp_path):
    """A project whose train.py, export/, lava_models.py and data.py come first on sys.path imports ours too."""
    (tmp_path / "train.py").write_text("OWNER = 'user'\n")
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "__init__.py").write_text("OWNER = 'user'\n")
    (tmp_path / "lava_models.py").write_text("OWNER = 'user'\n")
    (tmp_path / "data.py").write_text("OWNER = 'user'\n")
    probe = (
        "import train, export, lava_models, data\n"
        "import ipvae.train.trainer, ipvae.export.hdf5, ipvae.lava.pipeline, ipvae.data, ipvae.cli\n"
        "assert (train.OWNER, export.OWNER, lava_models.OWNER, data.OWNER) == ('user',) * 4\n"
        "assert ipvae.cli.build_parser().parse_args(['inspect', 'x.h5']).command == 'inspect'\n"
        "print('no clash')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0 and result.stdout.strip() == "no clash", result.stderr


# A data class's Lava adapter (QuantizedMatrix.lava_dense_kwargs) imports Lava inside itself and is called
# only by the graph builder: its imports are its callers', and the walk below checks no one on it calls one.
LAVA_ADAPTER_PREFIX = "lava_"


def all_imports(path: Path) -> tuple[set[str], set[str]]:
    """(every module a file imports, at the top or inside functions other than Lava adapters;
    the Lava adapters it calls)."""
    names, adapter_calls = set(), set()
    pending = [ast.parse(path.read_text())]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith(LAVA_ADAPTER_PREFIX):
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            if node.module.startswith("ipvae"):  # `from ipvae.pkg import module`
                names |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr.startswith(LAVA_ADAPTER_PREFIX):
            adapter_calls.add(node.func.attr)
        pending.extend(ast.iter_child_nodes(node))
    return names, adapter_calls


def source_files() -> dict[str, Path]:
    """ipvae module name -> its file, for every module of the distribution."""
    folders = ("ipvae", "train", "export", "lava_models")
    return {module_name(path): path for folder in folders for path in (REPO_ROOT / folder).rglob("*.py")}


def lava_paths_from(start: str, files: dict[str, Path]) -> list[list[str]]:
    """Import chains from ``start`` (following every ipvae import, at the top or inside functions) that end
    in Lava itself, in the Lava graph (ipvae.lava outside ipvae.lava.accounting) or in a call of a Lava adapter."""
    def is_lava(name: str) -> bool:
        in_graph = name.startswith("ipvae.lava") and not name.startswith("ipvae.lava.accounting") and name != "ipvae.lava"
        return name == "lava" or name.startswith("lava.") or in_graph

    chains, seen, frontier = [], {start}, [[start]]
    while frontier:
        chain = frontier.pop()
        imported_names, adapter_calls = all_imports(files[chain[-1]])
        chains += [[*chain, f"{call}()"] for call in sorted(adapter_calls)]
        for imported in sorted(imported_names):
            if is_lava(imported):
                chains.append([*chain, imported])
            elif imported in files and imported not in seen:
                seen.add(imported)
                frontier.append([*chain, imported])
    return chains


def test_the_accounting_imports_no_lava():
    """Counting, pricing and planning read arrays and integer models: no module of ipvae.lava.accounting
    reaches Lava or the Lava graph through any chain of imports (read from the source, nothing is run)."""
    files = source_files()
    accounting = sorted(name for name in files if name.startswith("ipvae.lava.accounting"))
    assert {"ipvae.lava.accounting.pricing", "ipvae.lava.accounting.energy", "ipvae.lava.accounting.fit"} <= set(accounting)
    chains = [" -> ".join(chain) for name in accounting for chain in lava_paths_from(name, files)]
    assert not chains, chains


def test_the_lava_check_sees_a_chain_through_another_module(tmp_path):
    """The check above can fail: a module reaching Lava through an ipvae module in between is found."""
    (tmp_path / "a.py").write_text("def f():\n    from ipvae.export.b import g\n")
    (tmp_path / "b.py").write_text("import numpy\nfrom lava.proc.dense.process import Dense\n")
    files = {"ipvae.lava.accounting.a": tmp_path / "a.py", "ipvae.export.b": tmp_path / "b.py"}
    assert lava_paths_from("ipvae.lava.accounting.a", files) == [
        ["ipvae.lava.accounting.a", "ipvae.export.b", "lava.proc.dense.process"]]
    (tmp_path / "c.py").write_text("def plan(matrix):\n    return matrix.lava_dense_kwargs()\n")
    assert lava_paths_from("ipvae.lava.accounting.c", {"ipvae.lava.accounting.c": tmp_path / "c.py"}) == [
        ["ipvae.lava.accounting.c", "lava_dense_kwargs()"]]


def test_the_data_package_is_one_module_object():
    """ipvae/data is imported as ipvae.data only: no second name (such as ipvae.train.data) loads the folder again."""
    import importlib.util

    import ipvae.data

    assert Path(ipvae.data.__file__).parent == REPO_ROOT / "ipvae" / "data"
    assert importlib.util.find_spec("ipvae.train.data") is None
