"""Following one speaker's face through a video.

Detection is the expensive step, so it runs on keyframes only (every ``redetect_every``
processed frames) and whenever the track is lost or drifts. A new track must be confirmed:
the detector runs again on the next frame and has to find the face where the track is, or
the first frame's face is withdrawn (:attr:`TrackResult.retract_previous`). A face stays
put from one frame to the next; a false detection in a face-free scene rarely does.

In between, the backend places landmarks inside a box predicted from the previous frame's
landmarks. The box is predicted in the *detector's* convention (dlib's boxes are tighter
than the landmark extent): the offset and scale between the box of the rigid landmarks
(nose and eye corners) and the detector box are learned at each detection. Only rigid points enter, because a
box that grows with the opening mouth or the raised brows would feed the expression back
into the next frame's landmarks (a predictor reads a face in a larger box differently).

One speaker per video: when several faces are found, the one continuous with the track
(largest overlap with its last box) is kept; at the start, or after the track was lost,
the largest face. How often the detector saw a second face that could as well be the
speaker is counted (:attr:`FaceTracker.detector_runs`, :attr:`FaceTracker.multi_face_runs`,
:func:`competing_faces`): a video that keeps showing two such faces is ambiguous about whose
dynamics it holds, and QC excludes it (``qc.max_multi_face_fraction``). Small or faint
detections (a face on a poster far behind, a detector false positive) do not count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facedyn.face.types import Detection, LandmarkBackend, box_from_landmarks

#: iBUG-68 points that expressions do not move: the nose and the eye corners.
RIGID_LANDMARKS = np.array([27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``x0, y0, x1, y1`` boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def competing_faces(
    faces: list[Detection],
    chosen: Detection,
    min_size_ratio: float = 0.5,
    min_score_ratio: float = 0.5,
) -> int:
    """Faces among ``faces`` other than ``chosen`` that could as well be the speaker.

    A competitor does not overlap ``chosen`` (IoU below 0.3), is at least ``min_size_ratio``
    as large and, when ``chosen`` has a positive detector score, scores at least
    ``min_score_ratio`` of it (scores are backend-specific, their ratio is comparable).
    """
    n = 0
    for face in faces:
        if face is chosen or iou(face.box, chosen.box) >= 0.3:
            continue
        if face.size < min_size_ratio * chosen.size:
            continue
        if chosen.score > 0 and not face.score >= min_score_ratio * chosen.score:
            continue
        n += 1
    return n


@dataclass
class TrackResult:
    """Outcome for one frame: the face (or None) and whether the detector produced it.

    ``retract_previous``: the previous frame started a track that this frame's detector
    run did not confirm, so the previous frame has no face after all.
    """

    detection: Detection | None
    detected_by_detector: bool
    retract_previous: bool = False


class FaceTracker:
    """Keyframe detection + landmark tracking for one face.

    Args:
        backend: the landmark backend.
        redetect_every: run the detector at least every this many processed frames.
        min_iou: a detection must overlap the track this much to continue it.
        max_scale_change: a tracked face whose box changes size by more than this factor
            between frames is treated as drift (re-detect).
    """

    def __init__(
        self,
        backend: LandmarkBackend,
        redetect_every: int = 15,
        min_iou: float = 0.3,
        max_scale_change: float = 1.35,
    ) -> None:
        self.backend = backend
        self.redetect_every = max(1, redetect_every)
        self.min_iou = min_iou
        self.max_scale_change = max_scale_change
        self._last: Detection | None = None
        #: The track began at the last frame and awaits its confirming detection.
        self.tentative = False
        self._since_detect = 0
        self._last_score = float("nan")
        # detector box = landmark box centre + offset * size, with size * scale
        self._offset = np.zeros(2)
        self._scale = np.ones(2)
        #: Detector runs so far, and those that also found a competing face
        #: (:func:`competing_faces`).
        self.detector_runs = 0
        self.multi_face_runs = 0

    def _learn_box_relation(self, det: Detection) -> None:
        lbox = box_from_landmarks(det.landmarks[RIGID_LANDMARKS])
        lsize = np.maximum(lbox[2:] - lbox[:2], 1e-6)
        self._offset = ((det.box[:2] + det.box[2:]) / 2 - (lbox[:2] + lbox[2:]) / 2) / lsize
        self._scale = (det.box[2:] - det.box[:2]) / lsize

    def _predict_box(self, landmarks: np.ndarray) -> np.ndarray:
        lbox = box_from_landmarks(landmarks[RIGID_LANDMARKS])
        lsize = lbox[2:] - lbox[:2]
        centre = (lbox[:2] + lbox[2:]) / 2 + self._offset * lsize
        half = self._scale * lsize / 2
        return np.concatenate([centre - half, centre + half])

    def _choose(self, faces: list[Detection]) -> Detection | None:
        if not faces:
            return None
        if self._last is not None:
            best = max(faces, key=lambda f: iou(f.box, self._last.box))
            if iou(best.box, self._last.box) >= self.min_iou:
                return best
        return max(faces, key=lambda f: f.size)

    def _detect(self, rgb: np.ndarray) -> TrackResult:
        faces = self.backend.detect(rgb)
        chosen = self._choose(faces)
        self.detector_runs += 1
        self._since_detect = 0
        was_tentative, self.tentative = self.tentative, False
        continues = (
            chosen is not None
            and self._last is not None
            and iou(chosen.box, self._last.box) >= self.min_iou
        )
        retract = was_tentative and not continues
        if chosen is None:
            self._last = None
            return TrackResult(None, False, retract)
        self.multi_face_runs += competing_faces(faces, chosen) > 0
        self._learn_box_relation(chosen)
        self._last_score = chosen.score
        self._last = chosen
        self.tentative = not continues
        return TrackResult(chosen, True, retract)

    def _plausible(self, new: Detection, old: Detection, shape: tuple[int, ...]) -> bool:
        new_box, old_box = box_from_landmarks(new.landmarks), box_from_landmarks(old.landmarks)
        ratio = (new_box[2] - new_box[0] + 1e-6) / (old_box[2] - old_box[0] + 1e-6)
        inside = (
            new.landmarks[:, 0].mean() > 0
            and new.landmarks[:, 1].mean() > 0
            and new.landmarks[:, 0].mean() < shape[1]
            and new.landmarks[:, 1].mean() < shape[0]
        )
        return (
            1 / self.max_scale_change < ratio < self.max_scale_change
            and inside
            and iou(new_box, old_box) > self.min_iou
        )

    def update(self, rgb: np.ndarray) -> TrackResult:
        """Process the next frame."""
        if self._last is None or self.tentative or self._since_detect + 1 >= self.redetect_every:
            return self._detect(rgb)
        refined = self.backend.refine(rgb, self._predict_box(self._last.landmarks))
        if not self._plausible(refined, self._last, rgb.shape):
            return self._detect(rgb)
        self._since_detect += 1
        tracked = Detection(refined.box, self._last_score, refined.landmarks, refined.dense)
        self._last = tracked
        return TrackResult(tracked, False)
