"""Cluster profiles: their contents, the installer for `--profile slurm`, and a real run of
the smoke cohort on a single-node SLURM cluster stood up on this machine.

The real-SLURM test runs only with FACEDYN_SLURM_TEST=1 (.ci/run sets it when it runs as root
and apt-get works): it installs Debian's slurm and munge, starts the daemons
(tests/slurm/local_slurm.sh), runs the pipeline with `--profile profiles/slurm`, checks that
every result matches a local run of the same config, and stops the daemons by their pids.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_utils import NO_AUDIT, ROOT, SNAKEMAKE, run_snakemake

sys.path.insert(0, str(ROOT / "profiles"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import dag_scale
import install_slurm_profile

from facedyn.gpu import gpu_slots, nvidia_gpu_visible

SLURM_PROFILE = ROOT / "profiles/slurm/config.yaml"
DEFAULT_PROFILE = ROOT / "profiles/default/config.yaml"
LOCAL_SLURM = ROOT / "tests/slurm/local_slurm.sh"
ENV_FLAG = "FACEDYN_SLURM_TEST"
#: Rules that may use a GPU: the SLURM profile asks for one, the rules only say gpu=0/1.
GPU_RULES = ("fit_flame", "train", "train_baseline_encoder", "evaluate")


def _profile(path: Path = SLURM_PROFILE) -> dict:
    return yaml.safe_load(path.read_text())


# --------------------------------------------------------------------------- profiles


def test_slurm_profile_asks_for_gpus_and_keeps_rules_portable():
    profile = _profile()
    assert profile["executor"] == "slurm"
    assert profile["jobs"] >= 50 and profile["latency-wait"] >= 30
    assert {"mem_mb", "runtime"} <= set(profile["default-resources"])
    for rule in GPU_RULES:
        res = profile["set-resources"][rule]
        assert res["gpu"] == 1 and res["cpus_per_gpu"] >= 1, rule
    # account, partitions and the insightface GPU request are placeholders (comments): the
    # repo's profile sets none of them ...
    assert not {"slurm_account", "slurm_partition"} & set(profile["default-resources"])
    assert "landmarks" not in profile["set-resources"]
    for rule in GPU_RULES:
        assert "slurm_partition" not in profile["set-resources"][rule], rule
    # ... and the installer's rendering of the placeholders is a profile that sets them all
    filled = yaml.safe_load(
        install_slurm_profile.render(
            SLURM_PROFILE.read_text(),
            account="acc",
            partition="cpu",
            gpu_partition="gpu",
            insightface=True,
        )
    )
    assert filled["default-resources"] == {
        **profile["default-resources"],
        "slurm_account": "acc",
        "slurm_partition": "cpu",
    }
    for rule in GPU_RULES:
        assert filled["set-resources"][rule]["slurm_partition"] == "gpu", rule
    assert filled["set-resources"]["landmarks"] == {
        "gpu": 1,
        "cpus_per_gpu": 4,
        "slurm_partition": "gpu",
    }
    # cluster specifics stay out of the rules
    cluster_only = re.compile(r"^\s+(slurm_\w+|cpus_per_\w+|gres|gpu_model|gpu=\d)", re.M)
    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        found = cluster_only.findall(smk.read_text())
        assert not found, f"{smk.name} sets {found}: that belongs in the profile"


def test_default_profile_never_overrides_the_slurm_profile():
    """profiles/default is read as the workflow profile with --profile profiles/slurm too,
    and a key set there wins: the two must not share a key."""
    default, slurm = _profile(DEFAULT_PROFILE), _profile()
    assert not set(default) & set(slurm), set(default) & set(slurm)
    assert default["resources"] == {"gpu": 1}
    assert default["set-resource-scopes"] == {"gpu": "local"}  # not tallied on a cluster


def test_gpu_slots_follow_the_device_setting_and_the_driver(tmp_path):
    no_driver, driver = tmp_path / "none", tmp_path / "gpus"
    (driver / "0000:65:00.0").mkdir(parents=True)
    assert gpu_slots("cpu", {}, driver) == 0
    assert gpu_slots("cuda", {}, no_driver) == 1 and gpu_slots("cuda:1", {}, no_driver) == 1
    assert gpu_slots("auto", {}, no_driver) == 0
    assert gpu_slots("auto", {}, driver) == 1
    assert gpu_slots("auto", {"CUDA_VISIBLE_DEVICES": ""}, driver) == 0
    assert gpu_slots("auto", {"CUDA_VISIBLE_DEVICES": "-1"}, driver) == 0
    assert gpu_slots("auto", {"CUDA_VISIBLE_DEVICES": "1"}, driver) == 1
    (tmp_path / "empty").mkdir()
    assert gpu_slots("auto", {}, tmp_path / "empty") == 0


def _flame_target(workdir: Path) -> str:
    row = pd.read_parquet(workdir / "results/cohort/manifest.parquet").iloc[0]
    return f"results/flame/{row.session_id}/{row.speaker_id}.parquet"


def _resources_of(stdout: str, rule: str) -> str:
    block = stdout.split(f"rule {rule}:")[1]
    return re.search(r"resources: (.*)", block).group(1)


@pytest.mark.workflow
def test_rules_request_a_gpu_only_when_their_device_is_one(tmp_path):
    """gpu=0 on a machine without an NVIDIA GPU (so profiles/default's gpu=1 limit does not
    serialise CPU jobs), gpu=1 when the config asks for cuda."""
    dag_scale.prepare(tmp_path, conversations=2)
    target = _flame_target(tmp_path)
    has_gpu = nvidia_gpu_visible()
    cmd = [
        SNAKEMAKE,
        "-n",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--cores",
        "1",
        "--configfile",
        str(ROOT / "config/config.yaml"),
        str(tmp_path / "scale.yaml"),
    ]
    res = subprocess.run([*cmd, "--", target], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "workflow specific profile" in res.stderr  # profiles/default was read
    assert f"gpu={int(has_gpu)}" in _resources_of(res.stdout, "fit_flame")
    assert "gpu=0" in _resources_of(res.stdout, "landmarks")  # dlib: CPU only
    (tmp_path / "cuda.yaml").write_text("fit: {device: cuda}\n")
    res = subprocess.run(
        [*cmd, str(tmp_path / "cuda.yaml"), "--", target],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "gpu=1" in _resources_of(res.stdout, "fit_flame")


# --------------------------------------------------------------------------- installer


def test_installer_fills_account_and_partitions_and_keeps_the_rest(tmp_path):
    dest = tmp_path / "slurm"
    install_slurm_profile.main(
        [
            "--account",
            "lab42",
            "--partition",
            "cpu",
            "--gpu-partition",
            "gpu_a100",
            "--insightface",
            "--dest",
            str(dest),
        ]
    )
    installed = _profile(dest / "config.yaml")
    repo = _profile()
    assert installed["default-resources"] == {
        **repo["default-resources"],
        "slurm_account": "lab42",
        "slurm_partition": "cpu",
    }
    for rule in GPU_RULES:
        assert installed["set-resources"][rule] == {
            **repo["set-resources"][rule],
            "slurm_partition": "gpu_a100",
        }
    assert installed["set-resources"]["landmarks"] == {
        "gpu": 1,
        "cpus_per_gpu": 4,
        "slurm_partition": "gpu_a100",
    }
    rest = {k: v for k, v in installed.items() if k not in ("default-resources", "set-resources")}
    assert rest == {
        k: v for k, v in repo.items() if k not in ("default-resources", "set-resources")
    }
    with pytest.raises(SystemExit, match="exists"):
        install_slurm_profile.main(["--no-account", "--dest", str(dest)])
    install_slurm_profile.main(["--no-account", "--dest", str(dest), "--force"])
    replaced = _profile(dest / "config.yaml")
    assert replaced["slurm-no-account"] is True
    assert "slurm_account" not in replaced["default-resources"]
    assert "landmarks" not in replaced["set-resources"]
    assert _profile(dest / "config.yaml.bak")["default-resources"]["slurm_account"] == "lab42"
    with pytest.raises(SystemExit):
        install_slurm_profile.main(["--account", "x'; rm -rf ~", "--dest", str(tmp_path / "b")])
    with pytest.raises(SystemExit):  # neither --account nor --no-account
        install_slurm_profile.main(["--dest", str(tmp_path / "c")])


@pytest.mark.workflow
def test_installed_profile_is_what_snakemake_profile_slurm_finds(tmp_path):
    """`snakemake --profile slurm` (no path) reads the installed profile: Snakemake's user
    config folder follows XDG_CONFIG_HOME, which the test points at a scratch folder."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "profiles/install_slurm_profile.py"),
            "--no-account",
            "--partition",
            "debug",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    installed = tmp_path / "config/snakemake/slurm/config.yaml"
    assert installed.is_file() and str(installed) in res.stdout
    work = tmp_path / "work"
    work.mkdir()
    res = subprocess.run(
        [
            SNAKEMAKE,
            "--profile",
            "slurm",
            "-n",
            "-s",
            str(ROOT / "Snakefile"),
            "--directory",
            str(work),
            "--configfile",
            str(ROOT / "config/config.yaml"),
            str(ROOT / "config/test.yaml"),
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "slurm_partition=debug" in res.stdout  # the installed profile's default-resources
    # without the installed profile the same command finds none
    env["XDG_CONFIG_HOME"] = str(tmp_path / "empty")
    res = subprocess.run(
        [
            SNAKEMAKE,
            "--profile",
            "slurm",
            "-n",
            "-s",
            str(ROOT / "Snakefile"),
            "--directory",
            str(work),
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode != 0 and "slurm" in res.stderr


# --------------------------------------------------------------------------- real SLURM


def _slurm_check(quick: bool = False) -> tuple[bool, str]:
    args = ["check", "quick"] if quick else ["check"]
    res = subprocess.run(
        ["bash", str(LOCAL_SLURM), *args], capture_output=True, text=True, timeout=300
    )
    return res.returncode == 0, (res.stdout + res.stderr).strip()


def _slurm_skip_reason() -> str | None:
    if os.environ.get(ENV_FLAG) == "1":
        return None
    ok, why = _slurm_check(quick=True)
    here = "it could run here" if ok else f"it could not run here: {why}"
    return (
        f"real-SLURM test off: {ENV_FLAG} is not set to 1 ({here}). .ci/run sets it when "
        f"it runs as root and apt-get works; it installs slurm and munge and starts "
        f"daemons, so it never runs by accident"
    )


def _sh(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(LOCAL_SLURM), *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def local_slurm():
    ok, why = _slurm_check()
    assert ok, f"{ENV_FLAG}=1 but SLURM cannot be set up here: {why}"
    _sh("down")  # leftovers of an interrupted earlier run, stopped by their recorded pids
    start = time.perf_counter()
    res = _sh("up")
    assert res.returncode == 0, f"local SLURM did not come up:\n{res.stdout}\n{res.stderr}"
    print(f"\nlocal SLURM up in {time.perf_counter() - start:.0f} s:\n{res.stderr}")
    try:
        yield
    finally:
        res = _sh("down")
        print(f"local SLURM down:\n{res.stderr}")
        assert res.returncode == 0, res.stderr


def slurm_overrides(profile: dict, cpus: int) -> list[str]:
    """The flags that adapt profiles/slurm to the test node: no account, squeue for status
    (no accounting database), quick status checks, no GPU (the profile's set-resources
    again with every gpu at 0: a --set-resources on the command line replaces the
    profile's whole entry), threads capped at the node's CPUs."""
    resources = [
        f"{rule}:{key}={0 if key == 'gpu' else value}"
        for rule, values in profile.get("set-resources", {}).items()
        for key, value in values.items()
    ]
    return [
        "--slurm-no-account",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--seconds-between-status-checks",
        "2",
        "--max-threads",
        str(cpus),
        "--set-resources",
        *resources,
    ]


def _normalize(obj, workdir: str):
    """Drop what legitimately differs between two runs (timings, provenance) and make
    paths relative to the run's working directory."""
    if isinstance(obj, dict):
        return {
            k: _normalize(v, workdir) for k, v in obj.items() if k not in ("provenance", "seconds")
        }
    if isinstance(obj, list | tuple):
        return [_normalize(v, workdir) for v in obj]
    if isinstance(obj, str):
        return obj.replace(workdir, "<workdir>")
    if hasattr(obj, "detach"):  # torch tensor
        return obj.detach().cpu().numpy()
    return obj


def _assert_same(a, b, where: str):
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)  # bitwise: seeded CPU runs
    elif isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def compare_runs(local: Path, slurm: Path) -> int:
    """Every result of the local run equals the SLURM run's; returns the files compared.

    Parquet tables: same data, exactly. JSON: same content but provenance and timings.
    Checkpoints: same tensors, exactly. CSV: same columns but timings. Figures: both exist.
    """
    import torch

    def files(root: Path) -> set[Path]:
        return {
            p.relative_to(root)
            for sub in ("results", "resources")
            for p in (root / sub).rglob("*")
            if p.is_file() and "benchmarks" not in p.relative_to(root).parts
        }

    names = files(local)
    assert names == files(slurm), names ^ files(slurm)
    compared = 0
    for rel in sorted(names):
        a, b = local / rel, slurm / rel
        if rel.suffix == ".parquet":
            x, y = pd.read_parquet(a), pd.read_parquet(b)
            for df, root in ((x, local), (y, slurm)):
                for col in df.select_dtypes(include=["object", "string"]).columns:
                    df[col] = df[col].map(lambda v, r=str(root): _normalize(v, r))
            pd.testing.assert_frame_equal(x, y, check_exact=True, obj=str(rel))
        elif rel.suffix == ".json":
            _assert_same(
                _normalize(json.loads(a.read_text()), str(local)),
                _normalize(json.loads(b.read_text()), str(slurm)),
                str(rel),
            )
        elif rel.suffix == ".pt":
            _assert_same(
                _normalize(torch.load(a, weights_only=False), str(local)),
                _normalize(torch.load(b, weights_only=False), str(slurm)),
                str(rel),
            )
        elif rel.suffix == ".csv":
            x, y = pd.read_csv(a), pd.read_csv(b)
            timing = [c for c in x.columns if c == "seconds"]
            pd.testing.assert_frame_equal(
                x.drop(columns=timing), y.drop(columns=timing), check_exact=True, obj=str(rel)
            )
        elif rel.suffix in (".md", ".txt"):
            # provenance fingerprints hash absolute input paths: they differ by design
            def text(path: Path, root: Path) -> str:
                return re.sub(
                    r"fingerprint `[0-9a-f]+`|\| `[0-9a-f]{16}` \|$",
                    "<hash>",
                    path.read_text().replace(str(root), "<workdir>"),
                    flags=re.M,
                )

            assert text(a, local) == text(b, slurm), rel
        else:
            continue  # figures, videos, head model: existence checked above
        compared += 1
    return compared


def test_compare_runs_ignores_provenance_and_paths_but_not_results(tmp_path):
    def tree(root: Path, value: float, seconds: float) -> None:
        (root / "results/qc").mkdir(parents=True)
        (root / "resources").mkdir()
        pd.DataFrame(
            {"speaker_id": ["a"], "video": [f"{root}/resources/a.mp4"], "x": [value]}
        ).to_parquet(root / "results/qc/videos.parquet")
        (root / "results/m.json").write_text(
            json.dumps({"top1": value, "seconds": seconds, "provenance": {"host": str(root)}})
        )
        (root / "results/log.csv").write_text(f"epoch,loss,seconds\n1,{value},{seconds}\n")

    tree(tmp_path / "a", 0.5, 1.0)
    tree(tmp_path / "b", 0.5, 2.0)
    assert compare_runs(tmp_path / "a", tmp_path / "b") == 3
    tree(tmp_path / "c", 0.5000001, 1.0)
    with pytest.raises(AssertionError):
        compare_runs(tmp_path / "a", tmp_path / "c")
    (tmp_path / "b/results/extra.json").write_text("{}")
    with pytest.raises(AssertionError):
        compare_runs(tmp_path / "a", tmp_path / "b")


@pytest.mark.slow
@pytest.mark.workflow
@pytest.mark.skipif(_slurm_skip_reason() is not None, reason=_slurm_skip_reason() or "")
def test_smoke_cohort_on_real_slurm_matches_a_local_run(tmp_path, local_slurm):
    (tmp_path / "local").mkdir()
    (tmp_path / "slurm").mkdir()
    # the local reference run goes alongside: the SLURM run mostly waits on the queue
    start = time.perf_counter()
    cpus = os.cpu_count() or 1
    overrides = slurm_overrides(_profile(), cpus)
    # SLURM's mechanics on the main cohort alone: the audit's cohorts are the same jobs again
    no_audit = tmp_path / "no_audit.yaml"
    no_audit.write_text(yaml.safe_dump(NO_AUDIT))
    # the grouping docs/cluster.md recommends, scaled to 8 videos: two group jobs of 4
    # videos (landmarks + fit_flame each), at most `cpus` cores and 8 GB per group job
    grouping = [
        "--groups",
        "landmarks=video",
        "fit_flame=video",
        "--group-components",
        "video=4",
        "--cores",
        str(cpus),
        "--resources",
        "gpu=1",
        "mem_mb=8000",
    ]
    cmd = [
        SNAKEMAKE,
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(tmp_path / "slurm"),
        "--profile",
        str(ROOT / "profiles/slurm"),
        *overrides,
        *grouping,
        "--verbose",
        "--configfile",
        str(ROOT / "config/config.yaml"),
        str(ROOT / "config/test.yaml"),
        str(no_audit),
    ]
    with open(tmp_path / "slurm.log", "w") as log:
        slurm_run = subprocess.Popen(
            cmd, cwd=tmp_path / "slurm", stdout=log, stderr=subprocess.STDOUT, text=True
        )
        local = run_snakemake(tmp_path / "local", overrides=NO_AUDIT)
        local_s = time.perf_counter() - start
        try:
            rc = slurm_run.wait(timeout=1200)
        finally:
            if slurm_run.poll() is None:
                slurm_run.kill()
    slurm_s = time.perf_counter() - start
    out = (tmp_path / "slurm.log").read_text()
    assert local.returncode == 0, local.stderr[-3000:]
    assert rc == 0, out[-5000:]
    submitted = re.findall(r"^sbatch call: .*$", out, flags=re.M)
    assert len(submitted) >= 25, out[-3000:]  # every job went through sbatch
    assert not [call for call in submitted if "--gpus" in call]
    groups = [call for call in submitted if "--comment rule_video_fit_flame_landmarks" in call]
    assert len(groups) == 2, out[-3000:]
    assert all(f"--cpus-per-task={cpus} " in call and "--mem 8000 " in call for call in groups)
    metrics = sorted((tmp_path / "slurm/results/identify").glob("*/metrics.json"))
    assert {p.parent.name for p in metrics} >= {"main", "within_session"}
    n = compare_runs(tmp_path / "local", tmp_path / "slurm")
    print(
        f"\nSLURM run {slurm_s:.0f} s ({len(submitted)} sbatch jobs), local run "
        f"{local_s:.0f} s alongside; {n} result files identical"
    )
