"""What a workflow script's process does at start: where its output goes, how many threads
its libraries use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from facedyn.runtime import THREAD_VARIABLES, available_cpus, limit_threads, local_core_limit


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
