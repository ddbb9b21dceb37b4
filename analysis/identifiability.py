"""Which expression components a landmark fit can tell apart, from the head model alone.

For every dominant expression component (``results/flame/quality.json``; all named
components when the run has none) the displacement it causes, at the neutral face, is
regressed on the displacements of the other components, and the share it explains (R^2)
is reported:

* on the 68 landmarks (x, y of the frontal 3D landmarks, what a 68-point fit sees):
  against the other dominant components, against every other expression component, and
  against the shape basis (what per-frame shape deviations can absorb);
* on every vertex (x, y), what a dense enough landmark set could at best see.

R^2 = 1 means the component moves the points exactly like a combination of the others: no
fitter can recover it from those points, only its prior can split the motion. Also reports
the singular values of the expression basis (how many independent directions it has).

    python analysis/identifiability.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facedyn.atomic import atomic_write_json
from facedyn.flame import load_flame

MODEL = Path("results/flame/model.json")
QUALITY = Path("results/flame/quality.json")
COMPONENTS = Path("resources/flame/synthetic/components.json")


def explained(y: np.ndarray, x: np.ndarray) -> float:
    """R^2 of the least-squares fit of ``y`` by the columns of ``x`` (no intercept)."""
    if x.shape[1] == 0:
        return 0.0
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    res = y - x @ beta
    return float(1.0 - (res @ res) / (y @ y))


def main() -> None:
    if not MODEL.is_file():
        raise SystemExit(
            "needs results/flame/model.json: snakemake --cores 2 results/flame/model.json"
        )
    info = json.loads(MODEL.read_text())
    flame = load_flame(
        info["model"],
        info["n_shape"],
        info["n_expr"],
        info["landmark_embedding"],
        dtype=torch.float64,
    )
    lmk = flame.landmark_model()
    n_shape, n_expr = flame.n_shape, flame.n_expr

    def expr_lmk(e: torch.Tensor) -> torch.Tensor:
        return lmk(expression=e[None], kind="3d")[0, :, :2].reshape(-1)

    def shape_lmk(s: torch.Tensor) -> torch.Tensor:
        return lmk(shape=s[None], kind="3d")[0, :, :2].reshape(-1)

    j_expr = torch.func.jacfwd(expr_lmk)(torch.zeros(n_expr, dtype=torch.float64)).numpy()
    j_shape = torch.func.jacfwd(shape_lmk)(torch.zeros(n_shape, dtype=torch.float64)).numpy()
    mesh_expr = flame.shapedirs[:, :2, n_shape:].reshape(-1, n_expr).numpy()
    names = {k: f"expr_{k:03d}" for k in range(n_expr)}
    if COMPONENTS.is_file():
        names.update(
            {c["index"]: c["name"] for c in json.loads(COMPONENTS.read_text())["expression"]}
        )
    if QUALITY.is_file():
        dominant = [int(c[-3:]) for c in json.loads(QUALITY.read_text())["dominant_components"]]
    else:
        dominant = [k for k in range(n_expr) if not names[k].startswith(("expr_", "random"))]
    rows: list[dict[str, Any]] = []
    for k in dominant:
        others = [d for d in dominant if d != k]
        rows.append(
            {
                "component": names[k],
                "landmark_motion_mm": 1000 * float(np.linalg.norm(j_expr[:, k])),
                "r2_other_dominant_68": explained(j_expr[:, k], j_expr[:, others]),
                "r2_other_expression_68": explained(j_expr[:, k], np.delete(j_expr, k, axis=1)),
                "r2_shape_68": explained(j_expr[:, k], j_shape),
                "r2_other_dominant_mesh": explained(mesh_expr[:, k], mesh_expr[:, others]),
            }
        )
    singular = np.linalg.svd(mesh_expr, compute_uv=False)
    print(
        "| component | landmark motion (mm per unit) | R^2 on other dominant, 68 | on all other "
        "expression, 68 | on shape, 68 | on other dominant, every vertex |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['component']} | {r['landmark_motion_mm']:.1f} | {r['r2_other_dominant_68']:.3f}"
            f" | {r['r2_other_expression_68']:.3f} | {r['r2_shape_68']:.3f} | "
            f"{r['r2_other_dominant_mesh']:.3f} |"
        )
    print(
        f"expression basis: {n_expr} components, rank {int((singular > 1e-9 * singular[0]).sum())}"
    )
    atomic_write_json(
        "results/analysis/identifiability.json",
        {"components": rows, "singular_values_m": singular.tolist()},
    )


if __name__ == "__main__":
    main()
