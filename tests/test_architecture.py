"""Dependencies point one way, and the light entry points stay light."""

from __future__ import annotations

import subprocess
import sys


def _modules_after_import(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


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
