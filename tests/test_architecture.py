"""Dependencies point one way, and the light entry points stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "tagf_core"


def _modules_after_import(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function (``from a.b import c`` gives ``a.b``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _importers(package: str, prefixes: tuple[str, ...]) -> dict[str, set[str]]:
    """Modules of ``tagf_core/<package>`` that import anything starting with one of ``prefixes``."""
    found = {}
    for path in sorted((CORE / package).rglob("*.py") if package else CORE.rglob("*.py")):
        hits = {name for name in _imports(path) if name.startswith(prefixes)}
        if hits:
            found[str(path.relative_to(CORE))] = hits
    return found


def test_config_and_layout_import_no_torch_or_typer() -> None:
    loaded = _modules_after_import("import tagf_core.config, tagf_core.data.layout, tagf_core.data.folds")
    assert not {"torch", "typer", "mlflow", "tagf_cli"} & loaded


def test_cli_help_imports_no_torch_or_mlflow() -> None:
    loaded = _modules_after_import("import tagf_cli.app")
    assert "torch" not in loaded
    assert "mlflow" not in loaded


def test_preprocessing_imports_nothing_of_training() -> None:
    loaded = _modules_after_import("import preprocessing, preprocessing.runner, preprocessing.trial")
    assert "torch" not in loaded
    assert not {m for m in loaded if m.startswith(("tagf_core.model", "tagf_core.training", "tagf_core.tracking"))}


def test_data_imports_no_model_training_or_tracking() -> None:
    """data/ is the on-disk contract and its readers: the backbones run in training (embed.py), not here."""
    assert _importers("data", ("tagf_core.model", "tagf_core.training", "tagf_core.tracking")) == {}


def test_config_imports_nothing_of_the_engine() -> None:
    assert {name for name in _imports(CORE / "config.py") if name.startswith("tagf_core")} == {"tagf_core.errors"}


def test_the_model_is_pure() -> None:
    """model/ is tensors in, tensors out: no training, tracking, files written or CLI."""
    assert _importers("model", ("tagf_core.training", "tagf_core.tracking", "tagf_core.atomic", "typer")) == {}


def test_tracking_knows_no_training_or_run_folder() -> None:
    """tracking/ is below training: the loop logs through it; joining runs and their folders is launch/'s."""
    assert _importers("tracking", ("tagf_core.training", "tagf_core.launch", "tagf_core.results")) == {}


def test_only_the_cli_renders() -> None:
    """rich (tables, progress) is the CLI's; the core logs and returns values."""
    assert _importers("", ("rich",)) == {}
    assert _importers("", ("typer", "tagf_cli")) == {}


def test_the_engine_imports_no_preprocessing_or_generator() -> None:
    """preprocessing and tagf_synth build on tagf_core (the layout), never the other way: the CLI joins them."""
    assert _importers("", ("preprocessing", "tagf_synth")) == {}
