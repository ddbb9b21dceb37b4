"""What a workflow script's process does at start: where its output goes, how many threads
its libraries use; and the core budget a local run holds to."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap

import pytest
from workflow_utils import SNAKEMAKE

from facedyn.runtime import (
    SNAKEMAKE_CORE_BUDGET_VERIFIED,
    THREAD_VARIABLES,
    available_cpus,
    limit_threads,
    local_core_limit,
)


def test_a_jobs_output_goes_to_its_log_file_only(tmp_path):
    log = tmp_path / "logs" / "job.log"
    log.parent.mkdir()
    log.write_text("a previous run's log\n")
    script = textwrap.dedent(f"""
        import logging, os, sys, warnings
        from tqdm import tqdm
        from facedyn.runtime import setup_logging
        setup_logging({str(log)!r})
        logging.getLogger("facedyn.x").info("a message")
        warnings.warn("a warning")
        print("printed")
        for _ in tqdm(range(3), desc="bar"):
            pass
        os.write(2, b"from C\\n")
        raise RuntimeError("the failure")
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert proc.stdout == "" and proc.stderr == ""
    text = log.read_text()
    assert "a previous run's log" not in text
    for expected in (
        "INFO facedyn.x: a message",
        "UserWarning: a warning",
        "printed",
        "bar:",
        "from C",
        "uncaught error",
        "RuntimeError: the failure",
    ):
        assert expected in text, expected
    assert text.count("a message") == 1


def test_without_a_log_file_logging_goes_to_stderr():
    script = textwrap.dedent("""
        import logging
        from facedyn.runtime import setup_logging
        setup_logging(None)
        logging.getLogger("facedyn.x").info("a message")
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "a message" in proc.stderr


def test_a_job_holds_every_library_to_its_threads():
    script = textwrap.dedent("""
        import json, os
        import cv2, numpy, torch
        from threadpoolctl import threadpool_info
        from facedyn.runtime import THREAD_VARIABLES, limit_threads
        limit_threads(1)
        print(json.dumps({
            "torch": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
            "cv2": cv2.getNumThreads(),
            "pools": [p["num_threads"] for p in threadpool_info()],
            "env": [os.environ[v] for v in THREAD_VARIABLES]}))
    """)
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["torch"] == 1 and seen["interop"] == 1 and seen["cv2"] == 1
    assert seen["pools"] and set(seen["pools"]) == {1}
    assert set(seen["env"]) == {"1"}


def test_zero_threads_is_an_error():
    with pytest.raises(ValueError, match="threads"):
        limit_threads(0)


def test_sorted_config_does_not_depend_on_key_order():
    from facedyn.runtime import sorted_config

    a = {"b": 1, "a": {"y": [{"q": 1, "p": 2}], "x": None}}
    b = {"a": {"x": None, "y": [{"p": 2, "q": 1}]}, "b": 1}
    assert repr(sorted_config(a)) == repr(sorted_config(b))
    assert list(sorted_config(a)) == ["a", "b"] and sorted_config(a) == a


def test_a_local_core_budget_is_at_most_the_cpus():
    assert local_core_limit(8, available=2) == 2
    assert local_core_limit(2, available=8) == 2
    assert local_core_limit(None, available=2) is None
    assert local_core_limit(8) == min(8, available_cpus())
    with pytest.raises(ValueError, match="available CPUs"):
        local_core_limit(8, available=0)


def test_available_cpus_follow_the_affinity_set():
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            "from facedyn.runtime import available_cpus; print(available_cpus())",
        ],
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}),
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "1"


def test_the_core_budget_is_verified_against_the_installed_snakemake():
    """cap_core_budget writes Snakemake's private state: another Snakemake version may keep
    the budget elsewhere. Re-check facedyn.runtime's note (is there a public way now? does
    the budget still live in ``workflow.global_resources["_cores"]``?), run the test below,
    then set SNAKEMAKE_CORE_BUDGET_VERIFIED to the new version."""
    assert importlib.metadata.version("snakemake") == SNAKEMAKE_CORE_BUDGET_VERIFIED


def test_cap_core_budget_holds_the_scheduler_and_every_rules_threads(tmp_path):
    """A Snakefile that caps `--cores 8` to 3: Snakemake schedules with 3 cores and runs a
    rule that claims 8 threads with 3."""
    (tmp_path / "Snakefile").write_text(
        textwrap.dedent("""
            from facedyn.runtime import cap_core_budget, core_budget

            print(f"budget given: {core_budget(workflow)}")
            cap_core_budget(workflow, 3)
            print(f"budget held: {core_budget(workflow)}")

            rule threads:
                output: "threads.txt"
                threads: 8
                shell: "echo {threads} > {output}"
        """)
    )
    res = subprocess.run(
        [SNAKEMAKE, "--cores", "8"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "budget given: 8" in out and "budget held: 3" in out
    assert "Provided cores: 3" in out
    assert (tmp_path / "threads.txt").read_text().strip() == "3"
