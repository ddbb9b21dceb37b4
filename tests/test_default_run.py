"""benchmarks/default_run.py's accounting: stages from Snakemake benchmark records, the
headline numbers, the docs block it replaces."""

from __future__ import annotations

import json
import subprocess
import sys

from workflow_utils import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import default_run

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_stages_sum_their_jobs_wall_time(tmp_path):
    bench = tmp_path / "results" / "benchmarks"
    for rel, s, cpu in [
        ("fit_flame/s1/a.tsv", 10.0, 9.0),
        ("fit_flame/s1/b.tsv", 12.0, 11.0),
        ("train/main/fold0.tsv", 100.0, 190.0),
        ("synthesize_default.tsv", 60.0, 110.0),
    ]:
        (bench / rel).parent.mkdir(parents=True, exist_ok=True)
        (bench / rel).write_text(HEADER + f"{s}\t0:00:10\t1\t1\t1\t1\t0\t0\t90\t{cpu}\n")
    rows = {r["stage"]: r for r in default_run.stage_table(bench)}
    assert rows["fit_flame"] == {"stage": "fit_flame", "jobs": 2, "wall_s": 22.0}
    assert rows["synthesize"]["wall_s"] == 60.0
    assert [r["stage"] for r in default_run.stage_table(bench)] == [
        "train",
        "synthesize",
        "fit_flame",
    ]

    (tmp_path / "results" / "identify" / "main").mkdir(parents=True)
    (tmp_path / "results" / "identify" / "main" / "metrics.json").write_text(
        json.dumps({"models": {"conformer": {"top1": 0.4, "top1_ci": [0.3, 0.5], "eer": 0.2}}})
    )
    top1 = default_run.headline(tmp_path / "results")
    assert top1 == {"main": {"conformer": {"top1": 0.4, "top1_ci": [0.3, 0.5]}}}
    text = default_run.markdown(
        {
            "cores": 8,
            "cpu_count": 2,
            "commit": "abc",
            "date": "d",
            "wall_s": 600.0,
            "cpu_s": 1080.0,
            "jobs": 5,
            "stages": default_run.stage_table(bench),
            "top1": top1,
        }
    )
    assert "**wall time: 10.0 min** for 5 jobs" in text and "CPU time: 18.0 min" in text
    assert "| fit_flame | 2 | 22 |" in text and "| main | conformer | 40.0 % [30.0, 50.0] |" in text

    before = default_run.children_cpu_s()
    subprocess.run([sys.executable, "-c", "sum(range(3 * 10**7))"], check=True)
    assert default_run.children_cpu_s() - before > 0.1  # the finished child's CPU counts

    doc = tmp_path / "performance.md"
    doc.write_text("# P\n\n<!-- default-run -->\nold\n<!-- /default-run -->\n\nrest\n")
    default_run.write_docs("new", doc)
    assert doc.read_text() == "# P\n\n<!-- default-run -->\nnew\n<!-- /default-run -->\n\nrest\n"


LOG = """Building DAG of jobs...
[Fri Dec  4 02:34:04 2026]
localrule synthesize_cohort:
    output: resources/synthetic/default/cohort.json
    jobid: 5
[Fri Dec  4 02:36:24 2026]
Finished jobid: 5 (Rule: synthesize_cohort)
Execute 2 jobs...

[Fri Dec  4 02:36:24 2026]
rule landmarks:
    jobid: 7

[Fri Dec  4 02:36:24 2026]
localcheckpoint manifest:
    jobid: 4
[Fri Dec  4 02:36:25 2026]
Finished jobid: 4 (Rule: manifest)
[Fri Dec  4 02:36:44 2026]
Finished jobid: 7 (Rule: landmarks)
"""


def test_timeline_reads_when_each_rule_ran():
    t = default_run.timeline(LOG, min_wall_s=0)
    rules = {r["rule"]: r for r in t["rules"]}
    assert [r["rule"] for r in t["rules"]] == ["synthesize_cohort", "manifest", "landmarks"]
    assert rules["synthesize_cohort"] == {
        "rule": "synthesize_cohort",
        "jobs": 1,
        "first_min": 0.0,
        "last_min": 140 / 60,
        "wall_s": 140.0,
    }
    assert rules["landmarks"]["wall_s"] == 20.0 and rules["manifest"]["wall_s"] == 1.0
    # 140 s synthesis alone, 1 s landmarks with the manifest, 19 s landmarks alone
    assert t["running_s"] == {"one": 159.0, "two_or_more": 1.0}
    assert [r["rule"] for r in default_run.timeline(LOG)["rules"]] == [
        "synthesize_cohort",
        "landmarks",
    ]
    text = default_run.markdown(
        {
            "cores": 8,
            "cpu_count": 2,
            "commit": "abc",
            "date": "d",
            "wall_s": 160.0,
            "cpu_s": 300.0,
            "jobs": 3,
            "stages": [],
            "top1": {},
            "timeline": t,
        }
    )
    assert "one job for 2.6 min, two or more for 0.0 min" in text
    assert "| landmarks | 1 | 2.3 | 2.7 | 20 |" in text
