"""The README's generated results block (``python -m facedyn.readme``): figures copied,
tables taken from results/summary.md, everything outside the markers untouched, idempotent,
and clear errors when the markers or the results are missing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from facedyn import readme as R
from facedyn.plots.summary import write_summary

ROOT = Path(__file__).resolve().parents[1]

BEFORE = "# Project\n\nIntro with ≥ unicode and trailing spaces   \n\n## Results\n\n"
AFTER = "\n\n## Later\n\nNo newline at the end"


def _metrics(top1: float) -> dict:
    models = {
        m: {
            "top1": top1 * f,
            "top1_ci": [top1 * f - 0.05, top1 * f + 0.05],
            "top5": min(1.0, 2 * top1 * f),
            "session_top1": top1 * f,
            "eer": 0.2,
            "min_dcf": 0.9,
            "per_fold_top1": [top1 * f],
        }
        for m, f in (("conformer", 1.0), ("lstm", 0.8), ("chance", 0.1))
    }
    return {
        "experiment": "main",
        "protocol": "cross_session",
        "n_speakers": 4,
        "chance": 0.25,
        "models": models,
        "source": "fitted",
        "settings": {"encoder": "conformer"},
        "dnr_vs_accuracy": {"model": "conformer", "spearman_rho": 0.4, "spearman_p": 0.3, "n": 4},
        "extraction_efficiency": 0.7,
        "provenance": {"config_hash": "abcdef0123456789", "facedyn_version": "0.1.0"},
    }


def _results(root: Path, top1: float = 0.625, figures: tuple[str, ...] | None = None) -> Path:
    """A finished run's results: metrics.json, summary.md (the real generator) and PNGs."""
    results = root / "results"
    metrics = results / "identify/main/metrics.json"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps(_metrics(top1)))
    write_summary(results / "summary.md", "smoke", [str(metrics)], main="main")
    (results / "figures").mkdir(exist_ok=True)
    names = (
        figures
        if figures is not None
        else (*R.REQUIRED_FIGURES, "fit_quality", "embeddings", "landmark_frame")
    )
    for name in names:
        (results / "figures" / f"{name}.png").write_bytes(f"PNG {name} {top1}".encode())
    return results


def _readme(root: Path, inside: str = "\n") -> Path:
    path = root / "README.md"
    path.write_bytes((BEFORE + R.START + inside + R.END + AFTER).encode())
    return path


def _outside(text: str) -> tuple[str, str]:
    before, _, after = R.split_readme(text)
    return before, after


def test_block_gets_tables_links_and_provenance(tmp_path):
    results, readme = _results(tmp_path), _readme(tmp_path)
    assert R.update_readme(results, readme, tmp_path / "docs/figures") is True
    text = readme.read_text()
    assert _outside(text) == (BEFORE + R.START, R.END + AFTER)  # byte-identical outside
    block = R.split_readme(text)[1]
    assert "### Main experiment `main`" in block  # summary.md's headings, demoted
    assert "# facedyn results" not in block
    assert "| Conformer | 62.5 % [57.5 %, 67.5 %] |" in block  # numbers from summary.md
    assert "Run `smoke` (config hash `abcdef0123456789`, facedyn 0.1.0)" in block
    for name in (*R.REQUIRED_FIGURES, "fit_quality"):
        assert f"](docs/figures/{name}.png)" in block
        copied = tmp_path / "docs/figures" / f"{name}.png"
        assert copied.read_bytes() == (results / "figures" / f"{name}.png").read_bytes()
    # the photograph-derived frame and the figures not chosen stay out of the repository
    assert not (tmp_path / "docs/figures/landmark_frame.png").exists()
    assert "landmark_frame" not in block and "embeddings" not in block
    assert block.startswith("\n") and block.endswith(")\n")


def test_the_audit_joins_the_block_with_the_main_numbers(tmp_path):
    """The run's own audit (a section of results/summary.md) is part of the block, before
    the figures, so the README never shows a main number without its leak floor."""
    results, readme = _results(tmp_path), _readme(tmp_path)
    summary = results / "summary.md"
    text = summary.read_text()
    summary.write_text(
        text + "\n## Appearance-leak audit\n\n| model | main fitted |\n|---|---|\n"
        "\n**Audit failed**: on the controls, something other than dynamics identifies.\n"
    )
    assert R.update_readme(results, readme, tmp_path / "docs/figures") is True
    _, inside, _ = R.split_readme(readme.read_text())
    assert "### Appearance-leak audit" in inside and "**Audit failed**" in inside
    assert inside.index("### Appearance-leak audit") < inside.index("### Key figures")


def test_second_run_changes_nothing(tmp_path):
    results, readme = _results(tmp_path), _readme(tmp_path)
    R.update_readme(results, readme, tmp_path / "docs/figures")
    first = readme.read_bytes()
    stamp = readme.stat().st_mtime_ns
    assert R.update_readme(results, readme, tmp_path / "docs/figures") is False
    assert readme.read_bytes() == first and readme.stat().st_mtime_ns == stamp


def test_new_results_replace_the_old_block(tmp_path):
    readme = _readme(tmp_path, inside="\nold hand-typed numbers\n")
    readme.chmod(0o640)
    R.update_readme(_results(tmp_path, top1=0.5), readme, tmp_path / "docs/figures")
    R.update_readme(_results(tmp_path, top1=0.75), readme, tmp_path / "docs/figures")
    text = readme.read_text()
    assert "old hand-typed" not in text and "50.0 %" not in text and "75.0 %" in text
    assert text.count(R.START) == 1 and text.count("### Main experiment") == 1
    assert _outside(text) == (BEFORE + R.START, R.END + AFTER)
    assert (readme.stat().st_mode & 0o777) == 0o640  # the README keeps its permissions
    assert (tmp_path / "docs/figures/accuracy.png").read_bytes().endswith(b"0.75")


@pytest.mark.parametrize(
    "text",
    [
        "no markers at all\n",
        f"{R.START}\n",
        f"{R.START}\n{R.END}\n{R.START}\n{R.END}\n",
        f"{R.END}\n{R.START}\n",
    ],
)
def test_bad_markers_are_an_error_before_anything_is_written(tmp_path, text):
    results = _results(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(text)
    with pytest.raises(R.ReadmeError, match="results:"):
        R.update_readme(results, readme, tmp_path / "docs/figures")
    assert readme.read_text() == text
    assert not (tmp_path / "docs/figures").exists()


def test_missing_results_are_an_error(tmp_path):
    readme = _readme(tmp_path)
    with pytest.raises(R.ReadmeError, match=r"summary\.md does not exist"):
        R.update_readme(tmp_path / "results", readme, tmp_path / "docs/figures")
    results = _results(tmp_path, figures=("accuracy", "cmc_det"))
    with pytest.raises(R.ReadmeError, match="dnr_vs_accuracy"):
        R.update_readme(results, readme, tmp_path / "docs/figures")
    assert not (tmp_path / "docs/figures").exists()
    (results / "summary.md").write_text("hand-typed\n")
    with pytest.raises(R.ReadmeError, match="title"):
        R.update_readme(results, readme, tmp_path / "docs/figures")


def test_command_line(tmp_path, capsys):
    results, readme = _results(tmp_path), _readme(tmp_path)
    args = [
        "--results",
        str(results),
        "--readme",
        str(readme),
        "--figures",
        str(tmp_path / "docs/figures"),
    ]
    assert R.main(args) == 0
    assert "updated" in capsys.readouterr().out
    assert R.main(args) == 0
    assert "already up to date" in capsys.readouterr().out
    assert R.main([*args[:2], "--readme", str(tmp_path / "missing.md"), *args[4:]]) == 1
    assert "error: no README" in capsys.readouterr().err


def test_repository_readme_has_one_block_and_frames_are_never_key_figures():
    before, _, _ = R.split_readme((ROOT / "README.md").read_text())
    assert "## Results on the embedded default" in before
    assert not R.FRAME_FIGURES & set(R.KEY_FIGURES)
    assert set(R.REQUIRED_FIGURES) <= set(R.KEY_FIGURES)
    assert os.sep not in "".join(R.KEY_FIGURES)


def test_crlf_readme_keeps_its_line_endings(tmp_path):
    results = _results(tmp_path)
    readme = tmp_path / "README.md"
    before, after = BEFORE.replace("\n", "\r\n"), AFTER.replace("\n", "\r\n")
    readme.write_bytes((before + R.START + "\r\n" + R.END + after).encode())
    assert R.update_readme(results, readme, tmp_path / "docs/figures") is True
    data = readme.read_bytes()
    assert data.startswith((before + R.START).encode()) and data.endswith((R.END + after).encode())
    assert b"\n" not in data.replace(b"\r\n", b"")  # every newline, the block's too, is CRLF
    assert R.update_readme(results, readme, tmp_path / "docs/figures") is False
