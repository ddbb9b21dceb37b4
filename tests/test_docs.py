"""The reference docs match the workflow: docs/pipeline.md's rule table lists exactly the
workflow's rules, and the docs describe what is (no issue or session numbers)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from workflow_utils import ROOT

PIPELINE = ROOT / "docs/pipeline.md"
RULES_HEADING = "## Rules"
DEVELOPMENT_HISTORY = re.compile(r"\b(issue|session)\s+#?\d+", re.IGNORECASE)
REFERENCE_DOCS = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "config/README.md"]


def _rule_table(text: str) -> list[str]:
    """First-column cells of the first table under :data:`RULES_HEADING`."""
    section = text.split(f"\n{RULES_HEADING}\n", 1)[1]
    section = re.split(r"\n## ", section, maxsplit=1)[0]
    rows: list[str] = []
    for line in section.splitlines():
        if not line.startswith("|"):
            if rows:
                break  # the table ended
            continue
        cell = line.strip("|").split("|")[0].strip()
        if cell == "rule" or set(cell) <= set("-: "):
            continue  # header and separator
        rows.append(cell.strip("`"))
    return rows


def _workflow_rules() -> set[str]:
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "--list-rules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    # one rule per line, its docstring after the name (continuation lines are indented)
    return {line.split()[0] for line in res.stdout.splitlines() if line and not line[0].isspace()}


def test_pipeline_rule_table_lists_every_rule_of_the_workflow():
    documented = _rule_table(PIPELINE.read_text())
    assert len(documented) == len(set(documented)), f"rules listed twice: {documented}"
    rules = _workflow_rules()
    assert "manifest" in rules and "fit_flame" in rules, rules  # the parse found rules
    assert set(documented) == rules, (
        f"docs/pipeline.md lacks {sorted(rules - set(documented))}, "
        f"lists rules that do not exist: {sorted(set(documented) - rules)}"
    )


def test_pipeline_names_its_one_checkpoint():
    text = PIPELINE.read_text()
    checkpoints = re.findall(
        r"^checkpoint (\w+):",
        "\n".join(p.read_text() for p in sorted((ROOT / "workflow/rules").glob("*.smk"))),
        re.MULTILINE,
    )
    assert checkpoints == ["manifest"]
    assert "checkpoint" in text.split(f"\n{RULES_HEADING}\n", 1)[1]


@pytest.mark.parametrize("path", REFERENCE_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_reference_docs_carry_no_development_history(path):
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if DEVELOPMENT_HISTORY.search(line)
    ]
    assert not hits, "\n".join(hits)
