#!/usr/bin/env bash
# Snakemake runs this inside the new conda environment, from the workflow's working
# directory (the checkout, unless you pass --directory: then set FACEDYN_ROOT).
set -euo pipefail
root="${FACEDYN_ROOT:-$PWD}"
if [ ! -f "$root/pyproject.toml" ]; then
  echo "facedyn checkout not found at $root; set FACEDYN_ROOT to the repository root" >&2
  exit 1
fi
python -m pip install --no-deps --editable "$root"
