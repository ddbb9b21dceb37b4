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


MEASURED = re.compile(r"\d+(\.\d+)? ?(%|s\b|x\b|min\b|CPU|frames/s)")
COMMIT = re.compile(r"\bcommits? [0-9a-f]{7}")


def _sections(text: str) -> dict[str, str]:
    """``## `` sections of a markdown page: heading -> body (its ``###`` subsections included)."""
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_measured_section_of_performance_md_names_its_commit():
    text = (ROOT / "docs/performance.md").read_text()
    unstamped = [
        heading
        for heading, body in _sections(text).items()
        if MEASURED.search(body) and not COMMIT.search(heading + body)
    ]
    assert not unstamped, f"sections with numbers but no commit: {unstamped}"


def test_readme_status_is_short_and_carries_no_measurements():
    readme = (ROOT / "README.md").read_text()
    status = [line for line in readme.splitlines() if line.startswith(">")]
    assert status and status[0].startswith("> **Status.**")
    assert len(status) <= 5, status
    assert not re.search(r"\d", " ".join(status)), status
    # from the status to the generated block (the paper's own figures come before the status)
    prose = readme.split("> **Status.**")[1].split("<!-- results:start -->")[0]
    assert not re.search(r"\d+(\.\d+)? ?%", prose), "a measured figure outside the block"


def _layout_block() -> str:
    text = PIPELINE.read_text()
    section = text.split("\n## Repository layout\n", 1)[1]
    return section.split("```", 2)[1]


def test_pipeline_layout_names_every_top_level_entry_and_library_module():
    block = _layout_block()
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    top = {path.split("/")[0] for path in tracked}
    missing = sorted(name for name in top if name not in block)
    assert not missing, f"docs/pipeline.md's layout omits {missing}"
    library = ROOT / "src" / "facedyn"
    names = {p.name for p in library.iterdir() if (p / "__init__.py").is_file()}
    names |= {p.stem for p in library.glob("*.py") if p.stem != "__init__"}
    lines = [line.strip() for line in block.splitlines()]
    listed = set()
    for line in lines:
        head = line.split("  ")[0]  # the names before the description
        listed |= {n.strip().rstrip("/") for n in head.replace(",", " ").split()}
    absent = sorted(names - listed)
    assert not absent, f"docs/pipeline.md's layout omits the library's {absent}"
