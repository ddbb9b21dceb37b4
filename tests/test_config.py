"""A config that cannot run fails while the DAG is built, naming the key to fix: the schema's
checks (as the Snakefile's ``validate`` makes them) and facedyn.config's, in this process.
test_workflow.py's ``test_invalid_config_fails_before_any_job_naming_the_key`` shows that a
Snakemake run makes them before any job."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from flame_factory import BROKEN_FLAME_CASES, broken_flame_files
from snakemake.exceptions import WorkflowError
from workflow_utils import NO_AUDIT, resolved_config

from facedyn.config import (
    SYNTHETIC,
    ConfigError,
    check_config,
    check_dataset_source,
    check_frames_in_figures,
    dense_embedding_file,
    frames_in_figures_allowed,
    real_head_model_files,
)


def _config_error(overrides: dict, **kwargs) -> str:
    """The message of the ConfigError that check_config raises for config/test.yaml with
    ``overrides``."""
    config = resolved_config(overrides)
    with pytest.raises(ConfigError) as err:
        check_config(config, **kwargs)
    return str(err.value)


def _table(tmp_path: Path, text: str) -> dict:
    path = tmp_path / "videos.csv"
    path.write_text(text)
    return {"dataset": {"kind": "manifest", "table": str(path)}}


def _real_head(model: Path, embedding: Path | None = None, **flame) -> dict:
    return {
        "flame": {
            "model": str(model),
            "landmark_embedding": None if embedding is None else str(embedding),
            **flame,
        }
    }


# --------------------------------------------------------------------------- the schema


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"flame": {"n_shape": 500}}, "n_shape"),
        ({"flame": {"n_shapes": 10}}, "n_shapes"),
        ({"dataset": {"kind": "youtube"}}, "kind"),
        ({"dataset": {"kind": "candor"}}, "root"),
        ({"seed": -1}, "seed"),
        ({"identify": {"experiments": {"bad name": {}}}}, "bad name"),
        ({"qc": {"max_multi_face_fraction": 1.5}}, "max_multi_face_fraction"),
        ({"privacy": {"frames_in_figures": "yes"}}, "frames_in_figures"),
    ],
)
def test_the_schema_rejects_a_bad_value_naming_its_key(override, named):
    with pytest.raises(WorkflowError) as err:
        resolved_config(override)
    assert named in str(err.value)


# --------------------------------------------------------------------------- a config that runs


@pytest.mark.parametrize("test_config", [False, True])
def test_the_shipped_configs_pass_and_resolve_the_audit_and_the_experiments(test_config):
    config = resolved_config(test_config=test_config)
    checked = check_config(config)
    assert set(checked.audit_cohorts) == {"null_dynamics", "swap", "null_swap"}
    assert set(checked.audit_experiments) <= set(checked.all_experiments)
    assert {"main", "truth"} <= set(checked.all_experiments)
    assert checked.experiments == checked.all_experiments  # the synthetic cohort has truth
    assert checked.experiments["main"].window_s == config["identify"]["window_s"]


def test_without_the_synthetic_cohort_its_truth_experiments_are_left_out_and_said(tmp_path):
    notes: list[str] = []
    overrides = _table(tmp_path, "speaker_id,session_id,video\np1,001,a.mp4\n")
    checked = check_config(resolved_config(overrides), log=notes.append)
    assert checked.all_experiments["truth"].source == "truth"
    assert "truth" not in checked.experiments and "main" in checked.experiments
    truth_of_controls = {n for n, s in checked.experiments.items() if s.source == "truth"}
    assert truth_of_controls and all(n.startswith("audit_") for n in truth_of_controls)
    assert notes == [
        "identify: ['truth'] read the synthetic cohort's truth; not run for dataset.kind: manifest"
    ]


# --------------------------------------------------------------------------- the fit


@pytest.mark.parametrize("folder", [None, "no/such/folder"])
def test_imported_fits_need_their_folder(folder):
    message = _config_error({"fit": {"backend": "import", "import": {"dir": folder}}})
    assert message == (
        "config key `fit.import.dir` must name a folder of <session>/<speaker>.npz "
        f"files when `fit.backend` is import (got {folder!r})"
    )


def test_imported_fits_in_a_folder_pass(tmp_path):
    check_config(resolved_config({"fit": {"backend": "import", "import": {"dir": str(tmp_path)}}}))


# --------------------------------------------------------------------------- manifest tables


def test_a_manifest_dataset_needs_its_table():
    message = _config_error({"dataset": {"kind": "manifest", "table": ""}})
    assert message == (
        "config key `dataset.table` is required with `dataset.kind: manifest`: a "
        "CSV/Parquet file with columns speaker_id, session_id, video"
    )


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            "speaker_id,session_id,video\n00123,001,a.mp4\n00123,001,b.mp4\n",
            "('001', '00123') x2 (rows 1, 2)",
        ),
        ("speaker,session_id,video\np1,001,a.mp4\n", "lacks required column(s) speaker_id"),
    ],
)
def test_a_bad_manifest_table_names_the_key_and_the_problem(tmp_path, text, named):
    message = _config_error(_table(tmp_path, text))
    assert message.startswith("config key `dataset.table`: ") and named in message


def test_files_are_read_only_where_asked(tmp_path):
    """Cluster jobs re-parse the workflow: they read neither the table nor the head model."""
    bad_table = _table(tmp_path, "speaker,session_id,video\np1,001,a.mp4\n")
    model, embedding = broken_flame_files(tmp_path, "missing_key")
    config = resolved_config({**bad_table, **_real_head(model, embedding, n_shape=10)})
    check_config(config, read_files=False)
    with pytest.raises(ConfigError, match=r"dataset\.table"):
        check_config(config)


def test_a_dataset_read_in_place_must_exist(tmp_path):
    candor = resolved_config({"dataset": {"kind": "candor", "root": str(tmp_path / "corpus")}})
    with pytest.raises(ConfigError) as err:
        check_dataset_source(candor)
    assert str(err.value) == (
        f"config key `dataset.root` points to {str(tmp_path / 'corpus')!r}, which is not a "
        "folder. Set it to the CANDOR corpus root (the folder of conversation folders)."
    )
    (tmp_path / "corpus").mkdir()
    check_dataset_source(candor)
    table = resolved_config({"dataset": {"kind": "manifest", "table": str(tmp_path / "t.csv")}})
    with pytest.raises(ConfigError, match=r"config key `dataset.table` points to .*t\.csv"):
        check_dataset_source(table)
    check_dataset_source(resolved_config())  # the synthetic cohort is generated


# --------------------------------------------------------------------------- the head model


def test_a_missing_flame_file_is_named_with_the_fix(tmp_path):
    message = _config_error(
        _real_head(tmp_path / "generic_model.pkl", tmp_path / "landmark_embedding.npy")
    )
    assert message == (
        f"config key `flame.model` points to {str(tmp_path / 'generic_model.pkl')!r}, which "
        "is not a file. Fix the path in your config override file (see config/README.md)."
    )
    (tmp_path / "generic_model.pkl").write_bytes(b"x")
    message = _config_error(
        _real_head(tmp_path / "generic_model.pkl", tmp_path / "landmark_embedding.npy")
    )
    assert message.startswith("config key `flame.landmark_embedding` points to")


def test_a_real_flame_model_needs_its_landmark_embedding(tmp_path):
    (tmp_path / "generic_model.pkl").write_bytes(b"x")
    message = _config_error(_real_head(tmp_path / "generic_model.pkl"))
    assert message == (
        "config key `flame.landmark_embedding` is required with a real FLAME model: "
        "point it to DECA's landmark_embedding.npy"
    )


#: The broken files a config can reach: the schema caps flame.n_expr at FLAME's 100, so too
#: many components is the library's case (test_bad_input.py).
CONFIG_FLAME_CASES = [c for c in BROKEN_FLAME_CASES if c[0] != "too_many_components"]


@pytest.mark.parametrize(("case", "key", "message"), CONFIG_FLAME_CASES)
def test_a_flame_file_that_cannot_be_used_names_its_key(tmp_path, case, key, message):
    model, embedding = broken_flame_files(tmp_path, case)
    error = _config_error(_real_head(model, embedding, n_shape=10, n_expr=10))
    assert error.startswith(f"config key `{key}`") and message in error


def test_a_usable_flame_model_passes_and_gives_its_files(tmp_path):
    model, embedding = broken_flame_files(tmp_path, "good")
    config = resolved_config(_real_head(model, embedding, n_shape=10, n_expr=10))
    check_config(config)
    assert real_head_model_files(config) == {"model": str(model), "embedding": str(embedding)}


# --------------------------------------------------------------------------- dense embedding


def test_the_dense_embedding_is_none_the_synthetic_one_or_a_file(tmp_path):
    assert dense_embedding_file(resolved_config()) is None
    synthetic = resolved_config({"flame": {"dense_embedding": SYNTHETIC}})
    assert dense_embedding_file(synthetic) == SYNTHETIC
    dense = tmp_path / "mediapipe_landmark_embedding.npz"
    with pytest.raises(ConfigError, match=r"config key `flame.dense_embedding` points to"):
        dense_embedding_file(resolved_config({"flame": {"dense_embedding": str(dense)}}))
    dense.write_bytes(b"x")
    assert dense_embedding_file(resolved_config({"flame": {"dense_embedding": str(dense)}})) == (
        str(dense)
    )


def test_the_synthetic_dense_embedding_needs_the_synthetic_head(tmp_path):
    model, embedding = broken_flame_files(tmp_path, "good")
    message = _config_error(
        {
            **_real_head(model, embedding, n_shape=10, n_expr=10, dense_embedding=SYNTHETIC),
            "landmarks": {"backend": "mediapipe"},
        }
    )
    assert message == (
        "config key `flame.dense_embedding`: `synthetic` measures the embedding on the "
        "synthetic head; with a real FLAME model point it to metrical-tracker's "
        "mediapipe_landmark_embedding.npz"
    )


def test_a_dense_embedding_needs_mediapipe_landmarks():
    message = _config_error({"flame": {"dense_embedding": SYNTHETIC}})
    assert message == (
        "config key `flame.dense_embedding` fits MediaPipe's dense points: set "
        "`landmarks.backend: mediapipe` too, or `flame.dense_embedding: null`"
    )


# --------------------------------------------------------------------------- landmark backends


def test_mediapipe_landmarks_need_mediapipe_installed(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "mediapipe" else real(name, *a),
    )
    message = _config_error({"landmarks": {"backend": "mediapipe"}})
    assert "pip install -e '.[mediapipe]'" in message


def test_a_missing_insightface_pack_names_its_folder_and_keys(tmp_path):
    root = tmp_path / "if"
    landmarks = {"backend": "insightface", "insightface": {"root": str(root)}}
    message = _config_error({"landmarks": landmarks})
    assert str(root / "models" / "buffalo_l") in message
    assert "landmarks.insightface.root" in message
    landmarks["insightface"]["download"] = True  # insightface fetches it in the job
    check_config(resolved_config({"landmarks": landmarks}))


# --------------------------------------------------------------------------- audit, experiments


def test_an_audit_cohort_that_cannot_run_names_its_key():
    message = _config_error({"audit": {"cohorts": {"bad": {"portrait": "everyone"}}}})
    assert "audit.cohorts.bad" in message


def test_an_experiment_with_an_unknown_key_names_it():
    message = _config_error({"identify": {"experiments": {"main": {"windw_s": 4}}}})
    assert message.startswith("identify.experiments.main: unknown key(s) ['windw_s']")


@pytest.mark.parametrize("key", ["main_experiment", "ceiling_experiment"])
def test_the_main_and_ceiling_experiments_must_be_configured(key):
    config = resolved_config({"identify": {key: "nope"}, **NO_AUDIT})  # the audit copies main
    with pytest.raises(ConfigError) as err:
        check_config(config)
    names = sorted(check_config(resolved_config(NO_AUDIT)).all_experiments)
    assert str(err.value) == (
        f"identify.{key}: 'nope' is not under identify.experiments ({names}); "
        "name one of them or set it to null"
    )


def test_the_ceiling_reads_the_truth():
    message = _config_error({"identify": {"ceiling_experiment": "main"}})
    assert message == "identify.ceiling_experiment: 'main' must have source: truth"


def test_main_and_ceiling_may_be_null():
    roles = {"main_experiment": None, "ceiling_experiment": None}
    check_config(resolved_config({"identify": roles, **NO_AUDIT}))


# --------------------------------------------------------------------------- figures


def test_a_frame_figure_of_real_videos_needs_the_opt_in(tmp_path):
    assert frames_in_figures_allowed(resolved_config())
    check_frames_in_figures(resolved_config())
    table = _table(tmp_path, "speaker_id,session_id,video\np1,001,a.mp4\n")
    config = resolved_config(table)
    assert not frames_in_figures_allowed(config)
    with pytest.raises(ConfigError) as err:
        check_frames_in_figures(config)
    assert str(err.value) == (
        "results/figures/landmark_frame.png draws a video frame: allowed for "
        "dataset.kind: synthetic, else only with `privacy.frames_in_figures: true`"
    )
    check_frames_in_figures(resolved_config({**table, "privacy": {"frames_in_figures": True}}))


def test_schema_defaults_are_the_schema_section_defaults(tmp_path):
    from workflow_utils import ROOT

    from facedyn.config import schema_defaults

    fit = schema_defaults(ROOT / "workflow/schemas/config.schema.yaml", "fit")
    assert fit["solver"] == "adam" and fit["iterations"] == 60 and fit["backend"] == "optimize"
    schema = tmp_path / "schema.yaml"
    schema.write_text(
        "properties:\n  a:\n    type: object\n    properties:\n"
        "      b: {type: integer, default: 3}\n      c: {type: string}\n"
    )
    assert schema_defaults(schema, "a") == {"b": 3}
    with pytest.raises(KeyError):
        schema_defaults(schema, "missing")
