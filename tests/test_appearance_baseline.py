"""The appearance_only baseline scores each session's face descriptor and mean shape."""

from __future__ import annotations

import numpy as np
import pandas as pd

from facedyn.dynamics.stage import run_folds
from facedyn.face.descriptor import DESCRIPTOR_DIM, DESCRIPTOR_FRAMES_KEY, DESCRIPTOR_KEY
from facedyn.flame.table import flame_table
from facedyn.identify.experiments import ExperimentSettings
from facedyn.identify.registry import BASELINE_SCORERS
from facedyn.identify.stage import _enrolment, baseline_data, fold_context
from facedyn.qc import QC_COLUMNS
from facedyn.tables import write_table


def _cohort(tmp_path, descriptors):
    """4 speakers x 3 sessions of random dynamics and one shared mean shape: only the
    descriptors (speaker -> vector or None) can tell the speakers apart."""
    rng = np.random.default_rng(0)
    n = 300  # 20 s at 15 fps
    paths, qc = [], []
    for spk in range(4):
        for ses in range(3):
            session, speaker = f"s{ses}{spk}", f"p{spk}"
            table = flame_table(
                np.arange(n) * 2,
                np.arange(n) / 15,
                np.ones(n, bool),
                {
                    "shape": np.zeros((n, 20)),
                    "expression": rng.standard_normal((n, 15)),
                    "jaw": rng.standard_normal((n, 3)) * 0.05,
                    "rotation": np.zeros((n, 3)),
                },
            )
            vec = descriptors[spk]
            meta = {
                "session_id": session,
                "speaker_id": speaker,
                DESCRIPTOR_KEY: None if vec is None else [float(v) for v in vec],
                DESCRIPTOR_FRAMES_KEY: 0 if vec is None else 4,
            }
            path = tmp_path / session / f"{speaker}.parquet"  # results/flame's layout
            path.parent.mkdir(parents=True)
            write_table(table, path, meta)
            paths.append(str(path))
            qc.append(
                {c: None for c in QC_COLUMNS}
                | {
                    "session_id": session,
                    "speaker_id": speaker,
                    "status": "ok",
                    "reason": "",
                    "cohort": "main",
                }
            )
    qc_path = tmp_path / "qc.parquet"
    write_table(pd.DataFrame(qc, columns=QC_COLUMNS), qc_path, {})
    settings = ExperimentSettings(
        name="main", n_expr=15, baselines=("appearance_only", "chance"), center=True
    )
    folds = tmp_path / "folds.parquet"
    run_folds(qc_path, paths, folds, settings)
    return settings, qc_path, paths, folds


def _top1(tmp_path, descriptors):
    settings, qc, paths, folds = _cohort(tmp_path, descriptors)
    hits = []
    for fold in range(3):
        ctx = fold_context(settings.to_dict(), qc, paths, folds, fold)
        train, test, train_spk, test_spk = _enrolment(ctx)
        data = baseline_data(ctx, train, test, train_spk, np.ones(len(train), bool), 0)
        scores, classes = BASELINE_SCORERS["appearance_only"](data)
        assert scores.shape == (len(test), 4) and list(classes) == sorted(set(train_spk))
        hits.append(np.asarray(classes)[scores.argmax(1)] == test_spk)
        if any(v is None for v in descriptors):
            missing = np.isin(test_spk, [f"p{k}" for k, v in enumerate(descriptors) if v is None])
            assert (np.ptp(scores[missing], axis=1) == 0).all()  # uniform: nothing to say
    return float(np.concatenate(hits).mean())


def test_a_face_recogniser_identifies_speakers_by_their_descriptors(tmp_path):
    rng = np.random.default_rng(1)
    faces = [rng.standard_normal(DESCRIPTOR_DIM) for _ in range(4)]
    (tmp_path / "a").mkdir()
    assert _top1(tmp_path / "a", faces) == 1.0
    (tmp_path / "b").mkdir()
    # one face for everyone: the descriptor carries nothing, shape is shared too
    assert _top1(tmp_path / "b", [faces[0]] * 4) <= 0.5
    (tmp_path / "c").mkdir()
    # a speaker without a face in any session gets uniform scores
    _top1(tmp_path / "c", [*faces[:3], None])
