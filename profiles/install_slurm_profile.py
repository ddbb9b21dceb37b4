#!/usr/bin/env python3
"""Install this repository's SLURM profile as your ``slurm`` profile.

Snakemake 9 resolves ``--profile slurm`` to ``./slurm/`` or to Snakemake's user config folder
(``~/.config/snakemake/slurm/`` on Linux), never to ``profiles/slurm/``. This writes
``profiles/slurm/config.yaml`` there with your account and partitions filled in, so that the
habitual ``snakemake --profile slurm`` runs this pipeline on your cluster:

    .venv/bin/python profiles/install_slurm_profile.py --account ACC --partition cpu \\
        --gpu-partition gpu

Options: ``--no-account`` (clusters without accounts), ``--insightface`` (request a GPU for
``landmarks``, for ``landmarks.backend: insightface``), ``--dest`` (another folder),
``--force`` (replace an existing profile; the old file is kept as ``config.yaml.bak``).
Only the standard library is needed; docs/cluster.md has the details.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "slurm" / "config.yaml"
#: Values go into double-quoted YAML strings: keep them to what SLURM names look like.
SAFE_VALUE = re.compile(r"[A-Za-z0-9_.,:+-]+")


def user_profile_dir(name: str = "slurm") -> Path:
    """Where ``snakemake --profile NAME`` looks after the working directory: Snakemake's own
    answer when it is importable, else the same rule (XDG_CONFIG_HOME, then ~/.config)."""
    try:
        from snakemake.common import get_appdirs

        return Path(get_appdirs().user_config_dir) / name
    except ImportError:
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(base) / "snakemake" / name


def _check(option: str, value: str | None) -> None:
    if value is not None and not SAFE_VALUE.fullmatch(value):
        raise SystemExit(f"{option} {value!r}: use letters, digits and _ . , : + - only")


def render(
    text: str,
    account: str | None = None,
    partition: str | None = None,
    gpu_partition: str | None = None,
    no_account: bool = False,
    insightface: bool = False,
) -> str:
    """The profile text with the commented placeholders filled in (comments kept)."""
    _check("--account", account)
    _check("--partition", partition)
    _check("--gpu-partition", gpu_partition)
    if account and no_account:
        raise SystemExit("give either --account or --no-account, not both")
    lines = text.splitlines()
    if insightface:
        lines = _uncomment_landmarks(lines)
    out = []
    for line in lines:
        indent = line[: len(line) - len(line.lstrip())]
        stripped = line.strip()
        if stripped.startswith("# slurm_account:") and account:
            line = f'{indent}slurm_account: "{account}"'
        elif stripped.startswith("# slurm_partition:"):
            # indent 2: default-resources (every job); deeper: a GPU rule's own partition
            value = partition if len(indent) == 2 else (gpu_partition or partition)
            if value:
                line = f'{indent}slurm_partition: "{value}"'
        out.append(line)
    result = "\n".join(out) + "\n"
    if no_account:
        result += "slurm-no-account: true  # this cluster has no accounts\n"
    return result


def _uncomment_landmarks(lines: list[str]) -> list[str]:
    """``  # landmarks:`` and its ``  #   key: value`` lines -> YAML (partition lines stay
    commented until a partition is given)."""
    out, inside = [], False
    for line in lines:
        if re.match(r"  # landmarks:", line):
            inside = True
            out.append("  " + line[4:])
        elif inside and line.startswith("  #   "):
            body = line[6:]
            prefix = "    # " if body.startswith("slurm_partition:") else "    "
            out.append(prefix + body)
        else:
            inside = False
            out.append(line)
    if not any(re.match(r"  landmarks:", line) for line in out):
        raise SystemExit(f"{SOURCE}: no commented `landmarks:` block to enable")
    return out


def install(dest: Path, force: bool = False, **values) -> Path:
    """Write the rendered profile to ``dest/config.yaml``; returns the file."""
    target = dest / "config.yaml"
    if target.exists() and not force:
        raise SystemExit(
            f"{target} exists; rerun with --force to replace it "
            "(the old file is kept as config.yaml.bak)"
        )
    dest.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.copy2(target, target.with_name("config.yaml.bak"))
    target.write_text(render(SOURCE.read_text(), **values))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Install profiles/slurm as your `slurm` Snakemake profile."
    )
    parser.add_argument("--account", help="SLURM account (sbatch -A)")
    parser.add_argument(
        "--no-account",
        action="store_true",
        help="the cluster has no accounts (slurm-no-account: true)",
    )
    parser.add_argument(
        "--partition", help="partition for CPU jobs (and GPU jobs unless --gpu-partition is given)"
    )
    parser.add_argument("--gpu-partition", help="partition for the rules that request a GPU")
    parser.add_argument(
        "--insightface",
        action="store_true",
        help="request a GPU for landmarks (landmarks.backend: insightface)",
    )
    parser.add_argument(
        "--dest", type=Path, default=None, help=f"profile folder (default: {user_profile_dir()})"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing profile")
    args = parser.parse_args(argv)
    if not (args.account or args.no_account):
        parser.error("give --account ACCOUNT, or --no-account for a cluster without accounts")
    target = install(
        args.dest or user_profile_dir(),
        force=args.force,
        account=args.account,
        partition=args.partition,
        gpu_partition=args.gpu_partition,
        no_account=args.no_account,
        insightface=args.insightface,
    )
    print(f"installed {target}; run: snakemake --profile slurm  (from this repository)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
