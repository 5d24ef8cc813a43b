"""The docs cannot drift: every ```python block of README.md and docs/*.md runs here, and so does every
```bash block whose first line is `# runnable` (with this environment's `ipvae` and `python`); the public API
(ipvae.load_run, export, load_export, load_inputs, run) is documented and imports lightly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ipvae

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
RUNNABLE_MARK = "# runnable"
RUNNABLE_BASH_BLOCK = re.compile(rf"^```bash\n({RUNNABLE_MARK}\n.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(document: Path) -> list[str]:
    return PYTHON_BLOCK.findall(document.read_text())


DOCUMENTS_WITH_CODE = [document for document in DOCUMENTS if python_blocks(document)]


def test_the_docs_have_python_blocks_to_run():
    assert {document.name for document in DOCUMENTS_WITH_CODE} >= {"README.md", "lava.md"}


@pytest.mark.lava
@pytest.mark.parametrize("document", DOCUMENTS_WITH_CODE, ids=lambda document: document.name)
def test_every_python_block_runs(document, tmp_path, monkeypatch):
    """The blocks of one document run in order in one namespace, in a scratch folder beside pretrained/."""
    (tmp_path / "pretrained").symlink_to(REPO_ROOT / "pretrained")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{document.stem}"}
    for index, block in enumerate(python_blocks(document)):
        code = compile(block, f"{document.name} python block {index + 1}", "exec")
        exec(code, namespace)  # noqa: S102 - running our own documentation is the point


def runnable_bash_blocks(document: Path) -> list[str]:
    return RUNNABLE_BASH_BLOCK.findall(document.read_text())


DOCUMENTS_WITH_SHELL = [document for document in DOCUMENTS if runnable_bash_blocks(document)]


def test_the_readme_has_a_runnable_shell_block():
    assert "README.md" in {document.name for document in DOCUMENTS_WITH_SHELL}


@pytest.mark.parametrize("document", DOCUMENTS_WITH_SHELL, ids=lambda document: document.name)
def test_every_runnable_bash_block_runs(document, tmp_path):
    (tmp_path / "pretrained").symlink_to(REPO_ROOT / "pretrained")
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for block in runnable_bash_blocks(document):
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=environment,
                                capture_output=True, text=True)
        assert result.returncode == 0, f"{document.name}:\n{block}\n{result.stderr[-2000:]}"


def test_public_api_is_documented():
    for name in ipvae.PUBLIC_API:
        value = getattr(ipvae, name)
        assert value.__doc__ and len(value.__doc__.split()) > 5, name


def test_importing_ipvae_does_not_import_the_stages():
    """The ground floor (errors, fileio, version) must be importable by every stage without a cycle."""
    probe = ("import sys, ipvae, ipvae.errors, ipvae.fileio; "
             "print(sorted(m for m in ('torch', 'ipvae.train', 'ipvae.export', 'ipvae.lava', 'lava') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert result.stdout.strip() == "[]"
