"""The repository's own checks, run by the README's test command (and so by CI):
ruff (lint and format), snakefmt and Snakemake's linter must all be clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_clean():
    res = _run(str(BIN / "ruff"), "check", ".")
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_format_clean():
    """One code style: `ruff format` would change nothing."""
    res = _run(str(BIN / "ruff"), "format", "--check", ".")
    assert res.returncode == 0, res.stdout + res.stderr


def test_snakefmt_clean():
    res = _run(str(BIN / "snakefmt"), "--check", "Snakefile", "workflow")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.workflow
def test_snakemake_lint_clean(tmp_path):
    res = _run(
        str(BIN / "snakemake"),
        "--lint",
        "--cores",
        "1",
        "--directory",
        str(tmp_path),
        "--configfile",
        str(ROOT / "config/config.yaml"),
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Congratulations" in res.stdout + res.stderr, res.stdout + res.stderr


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- test-command -->")[1].split("<!-- /test-command -->")[0]
    command = [line for line in block.splitlines() if line and not line.startswith("```")]
    assert len(command) == 1 and "pytest" in command[0]
    assert "test-command" in (ROOT / ".ci/run").read_text()


def test_conda_env_lists_runtime_dependencies():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # The mediapipe extra too: the job environment must run every landmarks.backend.
    deps = project["dependencies"] + project["optional-dependencies"]["mediapipe"]
    import yaml
    from packaging.requirements import Requirement

    env = yaml.safe_load((ROOT / "envs/facedyn.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {Requirement(line).name for line in pip}
    for dep in map(Requirement, deps):
        if dep.name.startswith("snakemake"):
            continue  # Snakemake runs outside the job environments
        assert dep.name in listed, f"{dep.name} missing from envs/facedyn.yaml"


def _leaf_keys(schema: dict, prefix: str = "") -> list[str]:
    keys = []
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        if "properties" in sub:
            keys.extend(_leaf_keys(sub, f"{path}."))
        else:
            keys.append(path)
    return keys


def test_every_config_key_is_documented():
    import yaml

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    doc = (ROOT / "config/README.md").read_text()
    missing = [k for k in _leaf_keys(schema) if f"`{k}`" not in doc]
    assert not missing, f"config/README.md does not document {missing}"


def test_schema_defaults_of_the_encoder_and_training_match_the_library():
    """The workflow (schema defaults) and library users (dataclass defaults) train alike."""
    import dataclasses

    import yaml

    from facedyn.identify.settings import EncoderSettings, TrainSettings

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    identify = schema["properties"]["identify"]["properties"]
    for key, cls in (("model", EncoderSettings), ("train", TrainSettings)):
        props = identify[key]["properties"]
        fields = {f.name: f.default for f in dataclasses.fields(cls) if f.name != "encoder"}
        assert set(props) == set(fields), key
        for name, default in fields.items():
            assert props[name]["default"] == default, f"identify.{key}.{name}"


def _dataclass_defaults(cls) -> dict:
    import dataclasses

    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = list(f.default) if isinstance(f.default, tuple) else f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def test_schema_defaults_of_the_cohort_fit_and_experiments_match_the_library():
    """Every settings dataclass of the library defaults to what the schema does (the schema
    is the one source; the dataclasses mirror it for library users)."""
    import yaml

    from facedyn.flame.fit import FitSettings
    from facedyn.identify.experiments import ExperimentSettings
    from facedyn.synthetic.generate import CohortConfig

    props = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())["properties"]
    # Fields that other keys set: the shape and expression counts are the head's
    # (flame.*), the fit's seed is the run's, the cohort's workers are the rule's threads.
    elsewhere = {
        "n_shape": props["flame"]["properties"]["n_shape"]["default"],
        "n_expr": props["flame"]["properties"]["n_expr"]["default"],
        "seed": props["seed"]["default"],
    }
    cases = [
        (FitSettings, props["fit"]["properties"], {"n_shape", "n_expr", "seed"}),
        (CohortConfig, props["dataset"]["properties"]["synthetic"]["properties"], {"workers"}),
        (ExperimentSettings, props["identify"]["properties"], set()),
    ]
    for cls, section, not_in_section in cases:
        for name, default in _dataclass_defaults(cls).items():
            if name in not_in_section:
                if name in elsewhere and cls is FitSettings:
                    assert default == elsewhere[name], f"{cls.__name__}.{name}"
                continue
            assert name in section, f"{cls.__name__}.{name} has no schema key"
            assert section[name].get("default") == default, f"{cls.__name__}.{name}"


def test_schema_defaults_of_the_landmark_backends_match_their_constructors():
    import inspect

    import yaml

    from facedyn.face.backends import DlibBackend
    from facedyn.face.insightface_backend import InsightFaceBackend
    from facedyn.face.mediapipe_backend import MediaPipeBackend

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    landmarks = schema["properties"]["landmarks"]["properties"]
    assert set(landmarks["backend"]["enum"]) == {"dlib", "mediapipe", "insightface"}
    for name, cls in (
        ("dlib", DlibBackend),
        ("mediapipe", MediaPipeBackend),
        ("insightface", InsightFaceBackend),
    ):
        props = landmarks[name]["properties"]
        params = inspect.signature(cls.__init__).parameters
        for key, spec in props.items():
            assert key in params, f"landmarks.{name}.{key} is no {cls.__name__} argument"
            assert params[key].default == spec["default"], f"landmarks.{name}.{key}"


def test_one_safe_id_pattern_and_the_schema_repeats_it():
    import yaml

    from facedyn.datasets.records import SAFE_ID_PATTERN
    from facedyn.names import SAFE_ID, is_safe_id

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    experiments = schema["properties"]["identify"]["properties"]["experiments"]
    assert experiments["propertyNames"]["pattern"] == SAFE_ID_PATTERN == f"^{SAFE_ID}$"
    assert is_safe_id("s-01.a_b") and not is_safe_id("id\n") and not is_safe_id(".hidden")
    assert not is_safe_id("a/b") and not is_safe_id(7)


def test_no_import_cycle_among_the_library_modules():
    """Imports between facedyn's modules form no cycle, counting those inside functions (for
    optional or heavy dependencies) and ``TYPE_CHECKING`` blocks: a cycle hidden by a late
    import is still one module knowing the other's internals both ways."""
    import ast

    src = ROOT / "src"
    modules = {}
    for path in (src / "facedyn").rglob("*.py"):
        rel = path.relative_to(src).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges

    cycles, state = [], {}

    def visit(name, stack):
        state[name] = "open"
        for nxt in sorted(graph[name]):
            if state.get(nxt) == "open":
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert "facedyn.face.types" in graph and graph["facedyn.face.insightface_backend"]
    assert not cycles, cycles


def test_the_default_config_holds_only_deviations_from_the_schema():
    """config/config.yaml sets a key only where the default run deviates from the schema's
    default (the one source of every default)."""
    import yaml

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    same = []

    def walk(values, node, path):
        for key, value in values.items():
            sub = (node.get("properties") or {}).get(key, {})
            if isinstance(value, dict) and "properties" in sub:
                walk(value, sub, f"{path}{key}.")
            elif "default" in sub and sub["default"] == value:
                same.append(f"{path}{key}")

    walk(config, schema, "")
    assert config and not same, f"config/config.yaml repeats schema defaults: {same}"
