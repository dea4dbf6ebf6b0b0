"""The layout is a contract: import direction, module size, one definition of the model name."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.env import REPO_ROOT

CODE = ("src", "flows", "blocks")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # The copy's packages come first on the path, before the installed (editable) project.
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": f"{root / 'src'}:{root}"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layout")
    for folder in CODE:
        shutil.copytree(
            REPO_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy2(REPO_ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_import_contracts_hold(tree_copy: Path) -> None:
    result = _lint_imports(tree_copy)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("bridgeai/serving/codec.py", "import prefect", "never imports Prefect"),
        ("bridgeai/serving/codec.py", "from bridgeai.data import versions", "model server"),
        ("bridgeai/data/cleaning.py", "from blocks import ObjectStorage", "never imports Prefect"),
        ("bridgeai/model/house_price.py", "from bridgeai.training import fit", "layers"),
        ("bridgeai/drift/stats.py", "from bridgeai.drift import report", "No import cycles"),
    ],
)
def test_a_violation_breaks_its_contract(
    tree_copy: Path, tmp_path: Path, module: str, line: str, contract: str
) -> None:
    root = tmp_path / "violated"
    shutil.copytree(tree_copy, root)
    path = root / "src" / module
    path.write_text(path.read_text() + f"\n{line}  # a deliberate violation\n")
    result = _lint_imports(root)
    assert result.returncode != 0, result.stdout[-3000:]
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout[-3000:]


def test_no_module_passes_500_lines() -> None:
    long = {
        str(path.relative_to(REPO_ROOT)): n
        for folder in CODE
        for path in (REPO_ROOT / folder).rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 500
    }
    assert not long, f"split these modules (house limit 500 lines): {long}"


def test_the_registered_model_name_is_written_once_in_code() -> None:
    """Docstrings and comments aside, the literal lives in bridgeai.model and nowhere else."""
    found = []
    for folder in CODE:
        for path in (REPO_ROOT / folder).rglob("*.py"):
            text = _code_only(path.read_text())
            found += [str(path.relative_to(REPO_ROOT))] * text.count("house_price_prediction_prod")
    assert found == ["src/bridgeai/model/__init__.py"]


def _code_only(source: str) -> str:
    """``source`` without docstrings and comments (string literals in code are kept)."""
    import ast
    import io
    import tokenize

    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstrings.add(body[0].lineno)
    kept = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            continue
        if token.type == tokenize.STRING and token.start[0] in docstrings:
            continue
        kept.append(token.string)
    return re.sub(r"\s+", " ", " ".join(kept))
