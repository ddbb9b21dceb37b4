"""Contact constraints of the synthetic cohort's faces: lips and eyelids never pass through.

The behaviour model adds up independent processes (speech, expressions, texture, noise) on
linear blendshapes, so a lip press on a closed mouth or a squint during a blink would push the
upper lip below the lower one, or one eyelid through the other. Real tissue stops at contact.
:func:`enforce_contacts` restores that, frame by frame, with the head's own landmarks: where
the inner lips overlap it parts them with the ``lips_part`` component, and where the lids
overlap it eases the ``blink`` component, by just enough (a few Newton steps on the measured
gap, which is nearly linear in both coefficients).
"""

from __future__ import annotations

import numpy as np
import torch

from facedyn.flame.model import POSE_DIM, FLAMELandmarks
from facedyn.synthetic.behaviour import ExpressionRoles

#: (upper, lower) landmark pairs whose vertical order contact preserves.
LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
LID_PAIRS = ((37, 41), (38, 40), (43, 47), (44, 46))
#: Gaps are in metres of the head frame; this much overlap counts as contact.
TOLERANCE_M = 1e-5


def contact_gaps(
    head: FLAMELandmarks, shape: np.ndarray, expression: np.ndarray, jaw: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest inner-lip and eyelid gap per frame (metres, head frame; < 0 = overlap).

    Args:
        head: the landmark model.
        shape: (n_shape,) identity coefficients.
        expression: (T, n_expr).
        jaw: (T, 3) jaw axis-angle.
    """
    n = len(expression)
    pose = np.zeros((n, POSE_DIM))
    pose[:, 6:9] = jaw
    with torch.no_grad():
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
        lmk = (
            head(t(np.repeat(np.asarray(shape)[None], n, 0)), t(expression), t(pose), kind="3d")
            .numpy()
            .astype(np.float64)
        )

    def smallest(pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
        up, low = zip(*pairs, strict=True)
        return (lmk[:, list(up), 1] - lmk[:, list(low), 1]).min(1)

    return smallest(LIP_PAIRS), smallest(LID_PAIRS)


def enforce_contacts(
    head: FLAMELandmarks,
    shape: np.ndarray,
    expression: np.ndarray,
    jaw: np.ndarray,
    roles: ExpressionRoles,
    iterations: int = 6,
) -> np.ndarray:
    """Expression with lips and lids kept apart (a corrected copy; frames in contact only).

    Raises:
        ValueError: the head has no ``lips_part`` component (lips cannot be kept apart).
    """
    if roles.lips_part is None:
        raise ValueError("contact needs a lips_part expression component")
    expr = np.array(expression, dtype=np.float64, copy=True)
    jaw = np.asarray(jaw, dtype=np.float64)
    # Gap per unit of each corrective component, at the neutral face of this shape.
    probe = np.zeros((3, expr.shape[1]))
    probe[1, roles.lips_part] = 1.0
    probe[2, roles.blink] = 1.0
    lips0, lids0 = contact_gaps(head, shape, probe, np.zeros((3, 3)))
    lip_rate = float(lips0[1] - lips0[0])
    lid_rate = float(lids0[2] - lids0[0])
    if lip_rate <= 0 or lid_rate >= 0:
        raise ValueError(
            "lips_part must open the lips and blink must close the eyes "
            f"(gap per unit: lips {lip_rate:+.2e}, lids {lid_rate:+.2e} m)"
        )
    for _ in range(iterations):
        lips, lids = contact_gaps(head, shape, expr, jaw)
        lip_fix = np.maximum(0.0, TOLERANCE_M - lips) / lip_rate
        lid_fix = np.maximum(0.0, TOLERANCE_M - lids) / -lid_rate
        lip_fix[lips >= 0] = 0.0
        lid_fix[lids >= 0] = 0.0
        if not lip_fix.any() and not lid_fix.any():
            break
        expr[:, roles.lips_part] += lip_fix
        expr[:, roles.blink] -= lid_fix
    return expr


__all__ = ["LID_PAIRS", "LIP_PAIRS", "contact_gaps", "enforce_contacts"]
