"""Identification experiments' settings (merged over ``identify``, checked key by key) and
the restriction of an experiment's training data."""

import pandas as pd
import pytest

from facedyn.identify.experiments import ExperimentError, experiment_settings
from facedyn.identify.stage import restrict_training


def test_nested_model_and_train_overrides_merge_key_by_key():
    identify = {
        "window_s": 4,
        "model": {"d_model": 32, "n_layers": 3},
        "train": {"epochs": 5},
        "experiments": {"small": {"model": {"n_layers": 1}, "baselines": ["lstm"]}},
    }
    s = experiment_settings(identify, "small")
    enc = s.encoder_settings()
    assert (enc.d_model, enc.n_layers, enc.encoder) == (32, 1, "conformer")
    assert s.train_settings().epochs == 5 and s.baselines == ("lstm",)
    assert s.encoder_settings("tcn").encoder == "tcn"
    assert s.to_dict()["model"] == {"d_model": 32, "n_layers": 1}


@pytest.mark.parametrize(
    "override, named",
    [
        ({"baselines": ["svm"]}, "baselines"),
        ({"source": "oracle"}, "source"),
        ({"encoder": "transformer"}, "encoder"),
        ({"data_fraction": 0}, "data_fraction"),
        ({"model": {"d_modle": 8}}, "d_modle"),
        ({"train": {"epochs": 0}}, "epochs"),
        ({"model": 3}, "model"),
    ],
)
def test_bad_identification_settings_name_the_key(override, named):
    with pytest.raises(ExperimentError, match=named) as err:
        experiment_settings({"experiments": {"x": override}}, "x")
    assert "identify.experiments.x" in str(err.value)


def test_restrict_training_keeps_the_first_part_of_training_rows_only():
    folds = pd.DataFrame(
        {
            "fold": 0,
            "speaker_id": ["a", "a", "b"],
            "session_id": ["s1", "s2", "s3"],
            "split": ["train", "test", "train"],
            "start_time_s": [0.0, 0.0, 10.0],
            "stop_time_s": [40.0, 40.0, 14.0],
            "n_windows": 1,
            "reason": "",
        }
    )
    out = restrict_training(folds, 0.25, window_s=8.0)
    assert out["stop_time_s"].tolist() == [10.0, 40.0, 14.0]  # b keeps >= one window
    assert restrict_training(folds, 1.0, 8.0) is folds
