"""Put a finished run's key figures and results table into the README, generated.

After ``snakemake --cores 8`` on the embedded default::

    python -m facedyn.readme --results results --readme README.md --figures docs/figures

copies the key PNG figures (:data:`KEY_FIGURES`; never the landmark frame, which shows a
photograph-derived face) from ``results/figures/`` to ``docs/figures/`` and replaces what lies
between the README's ``<!-- results:start -->`` and ``<!-- results:end -->`` markers with

* a line naming the run, its configuration hash, the facedyn version and the results' date;
* the tables of ``results/summary.md`` (written by ``rule summary`` through
  :func:`facedyn.plots.summary.write_summary`: numbers are taken from there, never re-derived),
  its headings demoted to sit under the README's own section;
* Markdown image links to the copied figures.

Everything outside the markers stays byte-identical (:func:`facedyn.docblocks.replace_block`);
running it twice changes nothing. Missing markers, a missing ``summary.md`` or missing required
figures are errors, raised before any file is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from facedyn.atomic import atomic_write
from facedyn.docblocks import BlockError, read_text, replace_block, split_block

START = "<!-- results:start -->"
END = "<!-- results:end -->"
COMMAND = "python -m facedyn.readme"

#: Figures copied into the README, in order: file stem -> alt text. ``required`` ones must exist
#: (``rule figures`` always writes them); the others are taken when the run made them.
KEY_FIGURES: dict[str, str] = {
    "accuracy": "Top-1 and top-5 identification accuracy of every model, with chance",
    "audit": "The appearance-leak audit: every model on the main cohort and on the controls",
    "cmc_det": "CMC curve and verification DET curve with the EER marked",
    "dnr_vs_accuracy": "Per-speaker accuracy against the drift-to-noise ratio",
    "drift_vs_noise": "Drift against noise per speaker and the DNR distribution",
    "fit_quality": "FLAME fit quality against the synthetic truth",
    "accuracy_vs_window": "Top-1 accuracy against window length",
    "accuracy_vs_data": "Top-1 accuracy against the amount of training data",
}
REQUIRED_FIGURES: tuple[str, ...] = ("accuracy", "cmc_det", "dnr_vs_accuracy", "drift_vs_noise")
#: Figures that must never be copied into the repository: they show video frames.
FRAME_FIGURES: frozenset[str] = frozenset({"landmark_frame"})

_TITLE = re.compile(r"^# facedyn results: run `(?P<run>[^`]*)`\s*$")


class ReadmeError(RuntimeError):
    """The README or the results are not in a state the block can be generated from."""


@dataclass(frozen=True)
class RunInfo:
    """What produced the results: run name, configuration hashes, facedyn version, date."""

    run_name: str
    config_hashes: tuple[str, ...]
    facedyn_version: str | None
    date: str


def split_readme(text: str) -> tuple[str, str, str]:
    """``(before, inside, after)`` of the one marker block; ``before`` ends with the start
    marker and ``after`` begins with the end marker, so ``before + new + after`` keeps every
    byte outside the block.

    Raises:
        ReadmeError: a marker is missing, repeated, or the end comes before the start.
    """
    try:
        return split_block(text, START, END)
    except BlockError as err:
        raise ReadmeError(
            f"the README's results block: {err}; add the empty block where the results go"
        ) from None


def summary_body(summary_md: str) -> tuple[str, str]:
    """``(run name, tables)`` from ``results/summary.md``: its title and preamble dropped,
    its headings demoted by one level (``##`` -> ``###``), trailing blank lines removed."""
    lines = summary_md.splitlines()
    match = _TITLE.match(lines[0]) if lines else None
    if match is None:
        raise ReadmeError(
            "results/summary.md does not start with the title `rule summary` "
            "writes (`# facedyn results: run ...`): regenerate it"
        )
    body = lines[1:]
    start = next((k for k, line in enumerate(body) if line.startswith("#")), len(body))
    out = [f"#{line}" if line.startswith("#") else line for line in body[start:]]
    while out and not out[-1].strip():
        out.pop()
    return match["run"], "\n".join(out)


def run_info(results: Path, run_name: str) -> RunInfo:
    """Run name, the configuration hashes and facedyn version recorded in every
    ``results/identify/*/metrics.json`` (``provenance``), and the date (UTC) of
    ``results/summary.md``."""
    hashes: set[str] = set()
    versions: set[str] = set()
    for path in sorted((results / "identify").glob("*/metrics.json")):
        prov = json.loads(path.read_text()).get("provenance") or {}
        if prov.get("config_hash"):
            hashes.add(str(prov["config_hash"]))
        if prov.get("facedyn_version"):
            versions.add(str(prov["facedyn_version"]))
    mtime = (results / "summary.md").stat().st_mtime
    date = dt.datetime.fromtimestamp(mtime, tz=dt.UTC).date().isoformat()
    return RunInfo(run_name, tuple(sorted(hashes)), ", ".join(sorted(versions)) or None, date)


def key_figures(figures_dir: Path) -> list[str]:
    """The stems of :data:`KEY_FIGURES` present as PNG in ``figures_dir``, in order.

    Raises:
        ReadmeError: a required figure is missing.
    """
    missing = [n for n in REQUIRED_FIGURES if not (figures_dir / f"{n}.png").is_file()]
    if missing:
        raise ReadmeError(
            f"{figures_dir} lacks the figures {missing} (PNG): finish the run "
            "(`snakemake --cores 8`) before updating the README"
        )
    return [
        n for n in KEY_FIGURES if n not in FRAME_FIGURES and (figures_dir / f"{n}.png").is_file()
    ]


def results_block(info: RunInfo, tables: str, figure_links: Sequence[tuple[str, str]]) -> str:
    """The Markdown between the markers (without them), starting and ending with a newline."""
    hashes = ", ".join(f"`{h}`" for h in info.config_hashes) or "not recorded"
    version = f", facedyn {info.facedyn_version}" if info.facedyn_version else ""
    lines = [
        "",
        f"<!-- Generated by `{COMMAND}` from results/; do not edit by hand. -->",
        f"*Run `{info.run_name}` (config hash {hashes}{version}), results of {info.date}; "
        f"tables from `results/summary.md`, figures from `results/figures/`.*",
        "",
        tables,
        "",
    ]
    if figure_links:
        lines += ["### Key figures", ""]
    for alt, link in figure_links:
        lines += [f"![{alt}]({link})", ""]
    return "\n".join(lines)


def _copy(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` atomically (world-readable), unless the bytes are equal."""
    if dst.is_file() and dst.read_bytes() == src.read_bytes():
        return
    umask = os.umask(0)
    os.umask(umask)

    def write(tmp: Path) -> None:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o666 & ~umask)

    atomic_write(dst, write)


def update_readme(
    results: str | os.PathLike[str],
    readme: str | os.PathLike[str],
    figures: str | os.PathLike[str],
) -> bool:
    """Copy the key figures of ``results`` into ``figures`` and rewrite the README's results
    block (see the module docstring). Returns whether the README changed.

    Raises:
        ReadmeError: missing markers, ``results/summary.md`` or required figures (checked
            before anything is written).
    """
    results_dir, readme_path, figures_dir = Path(results), Path(readme), Path(figures)
    if not readme_path.is_file():
        raise ReadmeError(f"no README at {readme_path}")
    split_readme(read_text(readme_path))  # the markers, before anything is written
    summary_path = results_dir / "summary.md"
    if not summary_path.is_file():
        raise ReadmeError(
            f"{summary_path} does not exist: run the pipeline "
            "(`snakemake --cores 8`, rule summary) first"
        )
    run_name, tables = summary_body(summary_path.read_text(encoding="utf-8"))
    names = key_figures(results_dir / "figures")
    info = run_info(results_dir, run_name)
    links = []
    for name in names:
        target = figures_dir / f"{name}.png"
        rel = Path(os.path.relpath(target.resolve(), readme_path.resolve().parent)).as_posix()
        links.append((KEY_FIGURES[name], rel))
    for name in names:
        _copy(results_dir / "figures" / f"{name}.png", figures_dir / f"{name}.png")
    return replace_block(readme_path, START, END, results_block(info, tables, links))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m facedyn.readme [--results] [--readme] [--figures]``."""
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description="Copy a finished run's key figures into the repository and write its "
        "results table into the README's results block.",
    )
    parser.add_argument("--results", default="results", help="the run's results folder")
    parser.add_argument("--readme", default="README.md", help="the README to update")
    parser.add_argument(
        "--figures", default="docs/figures", help="where the README's figure copies go"
    )
    args = parser.parse_args(argv)
    try:
        changed = update_readme(args.results, args.readme, args.figures)
    except ReadmeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{args.readme}: {'updated' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
