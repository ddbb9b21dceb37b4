"""Running the Snakemake workflow from tests in a scratch working directory."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
#: Overrides that leave out the audit's control cohorts, for runs that test something else
#: (resumption, bad inputs, SLURM): the controls are the same jobs again on other videos.
NO_AUDIT = {"audit": {"cohorts": {"null_dynamics": False, "swap": False, "null_swap": False}}}


def snakemake_command(
    workdir: Path, *args: str, overrides: dict | None = None, test_config: bool = True
) -> list[str]:
    """The ``snakemake`` command line :func:`run_snakemake` runs (for tests that need to
    start it themselves, e.g. to interrupt it)."""
    configs = [str(ROOT / "config/config.yaml")]
    if test_config:
        configs.append(str(ROOT / "config/test.yaml"))
    if overrides is not None:
        override_file = workdir / "overrides.yaml"
        override_file.write_text(yaml.safe_dump(overrides))
        configs.append(str(override_file))
    return [
        SNAKEMAKE,
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        *args,
        "--configfile",
        *configs,
    ]


def run_snakemake(
    workdir: Path,
    *args: str,
    overrides: dict | None = None,
    test_config: bool = True,
    timeout: int = 900,
) -> subprocess.CompletedProcess[str]:
    """``snakemake`` on this repo's Snakefile with results under ``workdir``.

    Config files: the default, then config/test.yaml (tiny cohort), then ``overrides``.
    """
    cmd = snakemake_command(workdir, *args, overrides=overrides, test_config=test_config)
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)


def resolved_config(overrides: dict | None = None, test_config: bool = True) -> dict[str, Any]:
    """The config the Snakefile checks for :func:`run_snakemake`'s config files, in this
    process: the same files merged as Snakemake merges them (``snakemake.utils.update_config``)
    and validated by the schema with its defaults filled in, as the Snakefile's ``validate``
    does (a value the schema rejects raises ``snakemake.exceptions.WorkflowError``)."""
    from snakemake.utils import update_config, validate

    files = [ROOT / "config/config.yaml"]
    if test_config:
        files.append(ROOT / "config/test.yaml")
    config: dict[str, Any] = {}
    for path in files:
        update_config(config, yaml.safe_load(path.read_text()))
    if overrides is not None:
        update_config(config, copy.deepcopy(overrides))
    validate(config, str(SCHEMA), set_default=True)
    return config
