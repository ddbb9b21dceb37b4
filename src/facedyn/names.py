"""Names the workflow and the library share (light: the Snakefile imports it).

:data:`SAFE_ID`: the one pattern for ids and names that become path components and
Snakemake wildcard values: session and speaker ids, experiment names
(``results/identify/<name>/``). Letters, digits, ``_ . -``; the first character a letter or
digit (no hidden files, no ``..``). The config schema repeats it for experiment names (JSON
Schema cannot import it); a test checks that the two agree.

:func:`table_ids`: the (session, speaker) of a per-video table from its path
(``.../{session}/{speaker}.parquet``, as the landmark and FLAME rules write them).

:data:`IDENTIFICATION_FIGURES`: the figures ``rule figures`` makes
(:func:`facedyn.plots.stage.run_identify_figures`).
"""

from __future__ import annotations

import os
import re

SAFE_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_SAFE = re.compile(SAFE_ID)


def is_safe_id(value: object) -> bool:
    """Whether ``value`` is a string matching :data:`SAFE_ID` as a whole."""
    return isinstance(value, str) and _SAFE.fullmatch(value) is not None


def table_ids(path: str | os.PathLike[str]) -> tuple[str, str]:
    """``(session, speaker)`` of a per-video table at ``.../{session}/{speaker}.parquet``:
    its folder's name and its file name without ``.parquet``."""
    parts = os.path.normpath(path).split(os.sep)
    return parts[-2], parts[-1].removesuffix(".parquet")


#: The identification figures of one experiment (``rule figures``' outputs, ``<name>.png``
#: and ``<name>.pdf``) and the category each has in the Snakemake report.
IDENTIFICATION_FIGURES = {
    "accuracy": "Identification",
    "cmc_det": "Identification",
    "dnr_vs_accuracy": "Drift-to-noise ratio",
    "drift_vs_noise": "Drift-to-noise ratio",
    "embeddings": "Identification",
}
