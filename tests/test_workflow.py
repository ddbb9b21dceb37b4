"""The workflow plans, validates its config before any job runs, and builds what exists."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_utils import NO_AUDIT, ROOT, run_snakemake, snakemake_command

from facedyn.synthetic import layout

pytestmark = pytest.mark.workflow
#: Every model config/test.yaml's main experiment scores (the audit copies it).
SMOKE_MODELS = {"conformer", "lstm", "tcn", "stats_lr", "shape_only", "appearance_only", "chance"}


def test_default_config_plans(tmp_path):
    res = run_snakemake(tmp_path, "-n", test_config=False)
    assert res.returncode == 0, res.stderr
    assert "flame_model" in res.stdout


def test_sweeps_are_one_config_file_away(tmp_path):
    """config/sweeps.yaml adds the paper's sweeps as experiments; each becomes a target."""
    sweeps = yaml.safe_load((ROOT / "config/sweeps.yaml").read_text())
    names = sorted(sweeps["identify"]["experiments"])
    assert {"window_2s", "window_16s", "data_25", "features_velocity", "encoder_tcn"} <= set(names)
    res = run_snakemake(tmp_path, "-n", overrides=sweeps, test_config=False)
    assert res.returncode == 0, res.stderr[-3000:]
    for name in names:
        assert f"results/identify/{name}/folds.parquet" in res.stdout  # before the checkpoint


def test_the_face_pool_study_is_one_config_file_away(tmp_path):
    """config/face_pool.yaml adds null controls drawn from fewer faces, each with its
    audit experiments and a cohort of its own."""
    study = yaml.safe_load((ROOT / "config/face_pool.yaml").read_text())
    res = run_snakemake(tmp_path, "-n", overrides=study, test_config=False)
    assert res.returncode == 0, res.stderr[-3000:]
    for n in (1, 2):
        assert study["audit"]["cohorts"][f"null_faces_{n}"]["n_faces"] == n
        for suffix in ("", "_truth"):
            assert f"results/identify/audit_null_faces_{n}{suffix}/folds.parquet" in res.stdout
        assert f"resources/synthetic/default-null_faces_{n}/" in res.stdout
    for cohort in ("null_dynamics", "swap", "null_swap"):  # beside the default controls
        assert f"results/identify/audit_{cohort}/folds.parquet" in res.stdout


def _planned_threads(rule: str, dry_run_stdout: str) -> int:
    """The threads of the rule's first job in a dry run's plan (which omits one thread)."""
    job = re.search(rf"^rule {rule}:\n((?:    .*\n)*)", dry_run_stdout, re.MULTILINE)
    assert job, f"{rule} is not in the plan"
    threads = re.search(r"^    threads: (\d+)$", job.group(1), re.MULTILINE)
    return int(threads.group(1)) if threads else 1


def _plan_on_one_cpu(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    one_cpu = {min(os.sched_getaffinity(0))}
    return subprocess.run(
        snakemake_command(tmp_path, "-n", *args),  # --cores 2
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: os.sched_setaffinity(0, one_cpu),
    )


def test_a_local_run_uses_at_most_the_cpus_it_has(tmp_path):
    """--cores beyond the CPUs the run may use is held to them, and the run says so: on one
    CPU, --cores 2 plans the cohort's synthesis (8 threads asked) with 1 thread."""
    res = _plan_on_one_cpu(tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "--cores 2 held to the 1 CPU(s) this run may use" in res.stdout + res.stderr
    assert _planned_threads("synthesize_cohort", res.stdout) == 1
    if len(os.sched_getaffinity(0)) >= 2:  # with its CPUs the same plan keeps --cores 2
        res = run_snakemake(tmp_path, "-n")
        assert res.returncode == 0, res.stderr[-3000:]
        assert "held to the" not in res.stdout + res.stderr
        assert _planned_threads("synthesize_cohort", res.stdout) == 2


def test_a_cluster_run_keeps_its_cores(tmp_path):
    """With a cluster executor --cores caps remote jobs' threads, which the submitting
    machine's CPUs do not bound."""
    res = _plan_on_one_cpu(tmp_path, "--executor", "slurm", "--jobs", "4")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "held to the" not in res.stdout + res.stderr
    assert _planned_threads("synthesize_cohort", res.stdout) == 2


def test_invalid_config_fails_before_any_job_naming_the_key(tmp_path):
    """The workflow runs facedyn.config's checks while it builds the DAG (every case of
    them, and of the schema, is in test_config.py): a manifest table with a repeated video
    stops a dry run before any job, naming the key and the rows."""
    table = tmp_path / "videos.csv"
    table.write_text("speaker_id,session_id,video\n00123,001,a.mp4\n00123,001,b.mp4\n")
    res = run_snakemake(
        tmp_path, "-n", overrides={"dataset": {"kind": "manifest", "table": str(table)}}
    )
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "config key `dataset.table`" in out and "('001', '00123') x2 (rows 1, 2)" in out
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


# --------------------------------------------------------------------------- the smoke run
# One run of the smoke pipeline (config/test.yaml) for the module; a test per stage checks
# that stage's outputs in it.


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working directory of one complete smoke run (every stage, cohort to metrics)."""
    workdir = tmp_path_factory.mktemp("smoke")
    res = run_snakemake(workdir)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return workdir


def _json(run: Path, rel: str):
    return json.loads((run / rel).read_text())


def _cohort(run: Path, name: str) -> Path:
    """The folder of the generated cohort ``name`` in a run."""
    return run / "resources/synthetic" / name


def test_smoke_run_synthesizes_the_cohort_and_its_manifest(smoke_run):
    manifest = pd.read_parquet(smoke_run / "results/cohort/manifest.parquet")
    assert (manifest["status"] == "ok").all()
    # 4 speakers x 2 sessions in the main cohort and in each of the audit's three controls
    assert manifest["cohort"].value_counts().to_dict() == {
        "main": 8,
        "null_dynamics": 8,
        "swap": 8,
        "null_swap": 8,
    }
    assert manifest.groupby(["session_id", "speaker_id"]).ngroups == 32
    assert manifest["video"].map(lambda v: Path(v).is_relative_to(smoke_run / "resources")).all()
    cohort = json.loads(layout.cohort_file(_cohort(smoke_run, "smoke")).read_text())
    assert cohort["n_videos"] == 8
    assert (smoke_run / "results/benchmarks/synthesize_smoke.tsv").is_file()


def test_smoke_run_detects_landmarks_legibly(smoke_run):
    manifest = pd.read_parquet(smoke_run / "results/cohort/manifest.parquet")
    for row in manifest.itertuples():
        table = smoke_run / "results/landmarks" / row.session_id / f"{row.speaker_id}.parquet"
        assert pd.read_parquet(table)["detected"].mean() > 0.9

    # landmark legibility against the cohort's truth (synthetic only)
    legibility = pd.read_parquet(smoke_run / "results/landmarks/legibility.parquet")
    assert len(legibility) == 8
    main = manifest[manifest["cohort"] == "main"]  # legibility reads the main cohort's truth
    assert set(zip(legibility["session_id"], legibility["speaker_id"], strict=True)) == set(
        zip(main["session_id"], main["speaker_id"], strict=True)
    )
    assert (legibility["detection_rate"] > 0.9).all()
    assert legibility["nme_median"].between(0, 0.2).all()
    assert (legibility["mouth_opening_truth_sd"] > 0).all()  # the truth moves
    # the measured mouth opening follows the truth's in every video
    assert legibility["mouth_opening_r"].between(0, 1, inclusive="right").all()
    leg = _json(smoke_run, "results/landmarks/legibility.json")
    assert leg["videos"] == 8 and leg["videos_detected"] == 8
    assert leg["nme_median"] == pytest.approx(legibility["nme_median"].median())
    assert leg["r_median"]["mouth_opening"] == pytest.approx(legibility["mouth_opening_r"].median())
    assert set(leg["targets"]) == {
        "mouth_opening_r",
        "mouth_width_r",
        "brow_height_r",
        "eye_opening_r",
        "nme",
        "detection_rate",
    }
    assert leg["targets_met"] == sum(t["met"] for t in leg["targets"].values())


def test_smoke_run_fits_flame_to_every_video(smoke_run):
    manifest = pd.read_parquet(smoke_run / "results/cohort/manifest.parquet")
    for row in manifest.itertuples():
        flame = pd.read_parquet(
            smoke_run / "results/flame" / row.session_id / f"{row.speaker_id}.parquet"
        )
        assert flame["valid"].mean() > 0.9 and "expr_009" in flame
    info = _json(smoke_run, "results/flame/model.json")
    assert info["synthetic"] is True
    assert info["n_shape"] == 20 and info["n_expr"] == 10
    assert info["fast_path_vertices"] < info["n_vertices"]
    assert len(info["model_sha256"]) == 64


def test_smoke_run_fit_quality_against_the_truth(smoke_run):
    # fit quality against the cohort's truth (synthetic only)
    quality = _json(smoke_run, "results/flame/quality.json")
    assert quality["videos"] == 8 and quality["videos_fitted"] == 8
    assert quality["dominant_variance_share"] >= 0.9 and quality["dominant_components"]
    assert 0 < quality["nme_median"] < 0.2
    # the jaw's r: a number, and the median of the per-video table it summarises
    videos = pd.read_parquet(smoke_run / "results/flame/quality_videos.parquet")
    jaw_r = videos.loc[videos["frames_matched"] > 0, "jaw_open_r"]
    assert len(jaw_r) == 8 and jaw_r.notna().all()
    assert math.isfinite(quality["jaw_open_r_median"])
    assert quality["jaw_open_r_median"] == pytest.approx(float(jaw_r.median()))
    assert quality["jaw_open_r_median"] > 0.5  # the fitted jaw follows the truth's (~0.94)


def test_smoke_run_qc_passes_every_video(smoke_run):
    qc = pd.read_parquet(smoke_run / "results/qc/videos.parquet")
    assert len(qc) == 32 and (qc["status"] == "ok").all()
    assert (qc["cohort"] == "main").sum() == 8
    assert qc["median_nme"].between(0, 0.2).all()


def test_smoke_run_dnr_of_every_speaker(smoke_run):
    # dnr: every speaker has two QC-ok sessions, so every speaker has a DNR
    sessions = pd.read_parquet(smoke_run / "results/dnr/sessions.parquet")
    assert len(sessions) == 8 and sessions["used"].all()
    assert list(sessions.columns[:4]) == ["speaker_id", "session_id", "n_valid", "noise"]
    assert "mean_shape_019" in sessions and (sessions["noise"] > 0).all()
    speakers = pd.read_parquet(smoke_run / "results/dnr/speakers.parquet")
    assert list(speakers.columns[:5]) == ["speaker_id", "n_sessions", "drift", "noise", "dnr"]
    assert len(speakers) == 4 and (speakers["n_sessions"] == 2).all()
    assert (speakers["dnr"] > 0).all()
    assert speakers["dnr"].to_numpy() == pytest.approx(speakers["drift"] / speakers["noise"])
    summary = _json(smoke_run, "results/dnr/summary.json")
    assert summary["n_speakers_with_dnr"] == 4 and summary["standardize"] is False
    assert summary["dnr"]["median"] == pytest.approx(speakers["dnr"].median())
    # the synthetic check: Spearman's rho of DNR with the generator's instability knob,
    # recomputed from the two per-speaker tables
    from scipy.stats import spearmanr

    check = summary["synthetic_check"]
    truth = pd.read_parquet(layout.speakers_table(_cohort(smoke_run, "smoke")))
    merged = speakers.merge(
        truth[["speaker_id", "instability"]].astype({"speaker_id": str}),
        on="speaker_id",
        validate="one_to_one",
    )
    assert check["n_speakers"] == 4 and len(merged) == 4
    assert check["truth_column"] == "instability"
    expected = spearmanr(merged["dnr"], merged["instability"])
    assert math.isfinite(check["spearman_rho"]) and math.isfinite(check["spearman_p"])
    assert check["spearman_rho"] == pytest.approx(float(expected.statistic))
    assert check["spearman_p"] == pytest.approx(float(expected.pvalue))
    assert check["spearman_rho"] > 0  # DNR ranks the speakers like the knob (smoke data: 1.0)
    for part in ("drift", "noise"):
        assert check[f"{part}_spearman_rho"] == pytest.approx(
            float(spearmanr(merged[part], merged["instability"]).statistic)
        ), part


def test_smoke_run_folds_of_every_experiment(smoke_run):
    # folds of every configured experiment (test.yaml: 1 s windows, 2 folds)
    columns = [
        "fold",
        "speaker_id",
        "session_id",
        "split",
        "start_time_s",
        "stop_time_s",
        "n_windows",
        "reason",
    ]
    folds = pd.read_parquet(smoke_run / "results/identify/main/folds.parquet")
    assert list(folds.columns) == columns
    assert sorted(folds["fold"].unique()) == [0, 1]
    for _, fold in folds.groupby("fold"):
        assert (fold["split"] == "test").sum() == 4 and (fold["split"] == "train").sum() == 4
        pairs = {
            split: set(zip(g["speaker_id"], g["session_id"], strict=True))
            for split, g in fold.groupby("split")
        }
        assert not pairs["test"] & pairs["train"]
    assert (folds["n_windows"] >= 2).all()
    tested = folds[folds["split"] == "test"].groupby("speaker_id")["session_id"].nunique()
    assert (tested == 2).all()  # two sessions, two folds: each tested once
    within = pd.read_parquet(smoke_run / "results/identify/within_session/folds.parquet")
    assert set(within["fold"]) == {0} and (within["split"] == "test").sum() >= 4
    parts = within[within["split"] != "excluded"].pivot(
        index=["speaker_id", "session_id"], columns="split", values=["start_time_s", "stop_time_s"]
    )
    guard = parts["start_time_s"]["test"] - parts["stop_time_s"]["train"]
    assert (guard >= 1.0 - 1e-6).all()  # one window (test.yaml window_s) between the parts


def test_smoke_run_trains_the_encoders(smoke_run):
    ident = smoke_run / "results/identify/main"
    assert (ident / "fold0/model.pt").is_file()
    assert (ident / "fold0/lstm.pt").is_file()
    assert len(pd.read_csv(ident / "fold0/train_log.csv")) >= 1


def test_smoke_run_evaluates_every_model_on_the_same_folds(smoke_run):
    # identification: every model on the same folds; numbers recomputable from predictions
    ident = smoke_run / "results/identify/main"
    metrics = _json(smoke_run, "results/identify/main/metrics.json")
    assert metrics["experiment"] == "main" and metrics["protocol"] == "cross_session"
    assert metrics["n_speakers"] == 4 and metrics["chance"] == pytest.approx(0.25)
    assert set(metrics["models"]) == SMOKE_MODELS
    predictions = pd.concat(
        pd.read_parquet(ident / f"fold{k}/predictions.parquet") for k in range(2)
    )
    assert list(predictions.columns) == [
        "model",
        "fold",
        "speaker_id",
        "session_id",
        "window_start",
        "predicted_speaker_id",
        "rank",
        "score",
    ]
    for name, entry in metrics["models"].items():
        rows = predictions[predictions["model"] == name]
        assert entry["top1"] == pytest.approx((rows["rank"] == 1).mean())
        assert entry["top1_ci"][0] <= entry["top1"] <= entry["top1_ci"][1]
        assert len(entry["per_fold_top1"]) == 2 and 0 <= entry["eer"] <= 1
    assert metrics["dnr_vs_accuracy"]["model"] == "conformer"
    assert metrics["extraction_efficiency"] is not None  # against the truth ceiling
    # the main encoder against every other model, paired on the same windows
    assert set(metrics["comparisons"]) == SMOKE_MODELS - {"conformer"}
    vs_stats = metrics["comparisons"]["stats_lr"]
    assert vs_stats["model"] == "conformer" and vs_stats["reference"] == "stats_lr"
    assert vs_stats["top1_diff"] == pytest.approx(
        metrics["models"]["conformer"]["top1"] - metrics["models"]["stats_lr"]["top1"]
    )
    truth = _json(smoke_run, "results/identify/truth/metrics.json")
    assert truth["source"] == "truth" and truth["extraction_efficiency"] is None
    per_speaker = pd.read_parquet(ident / "per_speaker.parquet")
    assert set(per_speaker["model"]) == set(metrics["models"])
    embeddings = pd.read_parquet(ident / "fold0/embeddings.parquet")
    assert len(embeddings) == (predictions.query("model == 'conformer' and fold == 0")).shape[0]
    assert (
        _json(smoke_run, "results/identify/within_session/metrics.json")["protocol"]
        == "within_session"
    )
    for sweep in ("window_4s", "data_50"):  # the default's small sweep, a sweeps.yaml point
        entry = _json(smoke_run, f"results/identify/{sweep}/metrics.json")
        assert set(entry["models"]) == {"conformer", "stats_lr"}


def test_smoke_run_draws_the_figures_and_writes_the_summary(smoke_run):
    # figures of the main experiment and of the fit, as PNG and PDF
    for name in (
        "accuracy",
        "cmc_det",
        "dnr_vs_accuracy",
        "drift_vs_noise",
        "embeddings",
        "fit_quality",
        "fit_traces",
        "legibility",
        "landmark_frame",
        "accuracy_vs_window",
        "accuracy_vs_data",
    ):
        for ext in ("png", "pdf"):
            assert (smoke_run / f"results/figures/{name}.{ext}").stat().st_size > 1000
    metrics = _json(smoke_run, "results/identify/main/metrics.json")
    leg = _json(smoke_run, "results/landmarks/legibility.json")
    summary = (smoke_run / "results/summary.md").read_text()
    conformer_top1 = f"{100 * metrics['models']['conformer']['top1']:.1f} %"
    assert "## Main experiment `main`" in summary and conformer_top1 in summary
    # every video counted
    assert "`results/qc/videos.parquet`: 32 videos, 32 ok, 0 excluded." in summary
    assert "## Landmark legibility" in summary
    assert f"NME median {leg['nme_median']:.3f}" in summary
    assert f"Targets met: {leg['targets_met']} of 6" in summary


def test_smoke_run_logs_and_records_provenance(smoke_run):
    assert (smoke_run / "logs/flame/flame_model.log").stat().st_size > 0
    info = _json(smoke_run, "results/flame/model.json")
    leg = _json(smoke_run, "results/landmarks/legibility.json")
    assert leg["provenance"]["config_hash"] == info["provenance"]["config_hash"]
    # the summary gives the provenance of every file it summarises
    prov = _json(smoke_run, "results/identify/main/metrics.json")["provenance"]
    summary = (smoke_run / "results/summary.md").read_text()
    assert (
        f"| `results/identify/main/metrics.json` | {prov['facedyn_version']} | "
        f"`{prov['config_hash']}` | `{prov['input_fingerprint']}` |"
    ) in summary


def test_manifest_dataset_of_ordinary_videos_with_bad_rows(tmp_path):
    """A user's folder of talking-head videos (other fps and size than CANDOR), with a
    missing and a corrupt file: the run completes and QC lists every video."""
    import cv2

    from facedyn.flame import write_synthetic_flame
    from facedyn.synthetic.generate import write_cohort

    head = write_synthetic_flame(tmp_path / "head", n_shape=20, n_expr=15)
    write_cohort(
        tmp_path / "src",
        {"n_speakers": 2, "sessions_per_speaker": 2, "duration_s": 4},
        head_model=str(head["model"]),
        head_embedding=str(head["landmark_embedding"]),
        head_components=str(head["components"]),
    )
    videos = tmp_path / "my_videos"
    videos.mkdir()
    rows = []
    for k, src in enumerate(sorted((tmp_path / "src").glob("*/processed/*.mp4"))):
        cap = cv2.VideoCapture(str(src))
        out = videos / f"clip{k}.mp4"
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 25, (640, 480))
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            writer.write(cv2.resize(frame, (640, 480)))
        writer.release()
        rows.append({"speaker_id": src.stem, "session_id": f"day{k // 2}", "video": out.name})
    (videos / "broken.mp4").write_bytes(b"\x00" * 5000)
    rows += [
        {"speaker_id": "p9", "session_id": "day9", "video": "broken.mp4"},
        {"speaker_id": "p8", "session_id": "day9", "video": "gone.mp4"},
    ]
    table = videos / "videos.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    overrides = {**NO_AUDIT, "dataset": {"kind": "manifest", "table": str(table)}}
    res = run_snakemake(tmp_path, overrides=overrides)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    qc = pd.read_parquet(tmp_path / "results/qc/videos.parquet").set_index("speaker_id")
    assert len(qc) == 6
    assert (qc.drop(["p9", "p8"])["status"] == "ok").all()
    assert qc.loc["p9", "status"] == "excluded" and "unreadable" in qc.loc["p9", "reason"]
    assert qc.loc["p8", "status"] == "excluded" and "missing" in qc.loc["p8", "reason"]
    summary = (tmp_path / "results/summary.md").read_text()  # nothing dropped silently
    assert "6 videos, 4 ok, 2 excluded" in summary
    assert "| `video_unreadable` | 1 |" in summary and "| `video_missing` | 1 |" in summary
    assert "| `within_session` |" in summary  # sessions too short: counted, with the reason
    lmk = pd.read_parquet(next((tmp_path / "results/landmarks/day0").glob("*.parquet")))
    assert lmk["detected"].mean() > 0.9
    assert lmk["frame"].tolist()[:3] == [0, 2, 4] and lmk["x1"].max() > 320  # 25 -> 15 fps, 640 px
    # no ground truth here: the ceiling experiment is left out, the others run
    assert not (tmp_path / "results/identify/truth").exists()
    main = json.loads((tmp_path / "results/identify/main/metrics.json").read_text())
    assert main["status"] == "ok" and main["extraction_efficiency"] is None
    # sessions too short for within_session: the experiment says why instead of failing
    within = json.loads((tmp_path / "results/identify/within_session/metrics.json").read_text())
    assert within["status"] == "no_data" and within["models"] == {}
    assert all("nothing to identify" in r for r in within["skipped"].values())


def test_dense_fit_plans_the_calibration_rule(tmp_path):
    res = run_snakemake(
        tmp_path,
        "-n",
        "results/flame/model.json",
        overrides={
            "landmarks": {"backend": "mediapipe"},
            "flame": {"dense_embedding": "synthetic"},
        },
    )
    assert res.returncode == 0, res.stderr
    assert "synthetic_dense_embedding" in res.stdout + res.stderr


def test_smoke_run_audits_its_appearance_leak(smoke_run):
    """The audit's control cohorts run through the same stages: each cohort's experiments
    read only its own videos, the swap cohort's sessions have faces of their own, and the
    summary states the 2x2 with the leak floor beside the main numbers."""
    manifest = pd.read_parquet(smoke_run / "results/cohort/manifest.parquet")
    for cohort in ("null_dynamics", "swap", "null_swap"):
        for source, suffix in (("fitted", ""), ("truth", "_truth")):
            name = f"audit_{cohort}{suffix}"
            metrics = _json(smoke_run, f"results/identify/{name}/metrics.json")
            assert metrics["settings"]["cohort"] == cohort and metrics["source"] == source
            assert set(metrics["models"]) == SMOKE_MODELS
            folds = pd.read_parquet(smoke_run / f"results/identify/{name}/folds.parquet")
            own = manifest[manifest["cohort"] == cohort]
            assert set(folds["session_id"]) == set(own["session_id"])
    # the control cohorts' truth: one dynamics distribution where it must be shared, a new
    # face every session where faces are swapped
    null = pd.read_parquet(layout.speakers_table(_cohort(smoke_run, "smoke-null_dynamics")))
    shared = ["syllable_rate_hz", "smile_rate_per_min", "texture_hz", "instability"]
    assert (null[shared].nunique() == 1).all()
    swap = pd.read_parquet(layout.sessions_table(_cohort(smoke_run, "smoke-swap")))
    main = pd.read_parquet(layout.speakers_table(_cohort(smoke_run, "smoke")))
    drift = swap.filter(like="shape_drift_").to_numpy()
    for _, rows in swap.groupby("speaker_id"):
        faces = rows.filter(like="shape_drift_").to_numpy()  # the speaker's own shape + drift
        assert len(faces) == 2 and abs(faces[0] - faces[1]).max() > 0.1
    assert len(drift) == 8
    swap_speakers = pd.read_parquet(layout.speakers_table(_cohort(smoke_run, "smoke-swap")))
    assert swap_speakers["syllable_rate_hz"].nunique() == len(swap_speakers)
    assert not set(swap_speakers["speaker_id"]) & set(main["speaker_id"])
    summary = (smoke_run / "results/summary.md").read_text()
    assert "## Appearance-leak audit" in summary
    assert (
        "| model | main fitted | main truth | null fitted | null truth | swap fitted |" in summary
    )
    assert "leak floor (null) | efficiency (swap) |" in summary  # beside the main numbers
    assert ("**Audit passed**" in summary) != ("**Audit failed**" in summary)
    for ext in ("png", "pdf"):
        assert (smoke_run / f"results/figures/audit.{ext}").stat().st_size > 1000
