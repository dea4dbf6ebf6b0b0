"""Which bridgeai modules a part needs, read from import statements (on a package written here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridgeai.model import packaging


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "bridgeai" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "bridgeai"


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return _write(
        tmp_path,
        {
            "__init__.py": "LAZY = {'x': 'bridgeai.heavy'}\n",  # a string, not an import
            "schema.py": "import json\n",
            "heavy.py": "import polars\n",
            "typed.py": "import pandas\n",
            "stage/__init__.py": "",
            "stage/main.py": (
                "from __future__ import annotations\n"
                "from typing import TYPE_CHECKING\n"
                "import numpy as np\n"
                "from bridgeai import schema\n"
                "from bridgeai.stage import CONSTANT\n"
                "from . import helper\n"
                "if TYPE_CHECKING:\n"
                "    from bridgeai import typed\n"
                "else:\n"
                "    import orjson\n"
                "def run():\n"
                "    import uvicorn\n"
                "    from bridgeai.other import thing\n"
            ),
            "stage/helper.py": "from .. import schema\n",
            "stage/unused.py": "import bridgeai.heavy\n",
            "other.py": "import numpy\n",
        },
    )


def test_the_closure_follows_imports_at_any_depth_but_not_type_only_ones(package: Path) -> None:
    found = packaging.closure("bridgeai.stage.main", root=package)
    assert list(found) == [
        "bridgeai",
        "bridgeai.other",
        "bridgeai.schema",
        "bridgeai.stage",
        "bridgeai.stage.helper",
        "bridgeai.stage.main",
    ]
    main = found["bridgeai.stage.main"]
    assert main.third_party == {"numpy", "orjson"}
    assert main.deferred_third_party == {"uvicorn"}
    assert found["bridgeai.schema"].third_party == set()  # json is the standard library's


def test_submodules_copy_tree_and_wheel_paths(package: Path, tmp_path: Path) -> None:
    assert packaging.submodules("bridgeai.stage", root=package) == [
        "bridgeai.stage",
        "bridgeai.stage.helper",
        "bridgeai.stage.main",
        "bridgeai.stage.unused",
    ]
    modules = packaging.closure("bridgeai.stage.helper", root=package)
    copied = packaging.copy_tree(modules, tmp_path / "out", root=package)
    assert sorted(p.relative_to(copied).as_posix() for p in copied.rglob("*.py")) == [
        "__init__.py",
        "schema.py",
        "stage/__init__.py",
        "stage/helper.py",
    ]
    assert packaging.relative_files(modules, root=package)[0] == "bridgeai/__init__.py"


def test_an_unknown_module_is_a_lookup_error(package: Path) -> None:
    with pytest.raises(LookupError, match=r"bridgeai\.nope is not a module"):
        packaging.closure("bridgeai.nope", root=package)
