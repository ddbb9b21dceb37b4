"""Dataset indexing: a CANDOR corpus, a user's table or the synthetic cohort -> the manifest.

The manifest has one row per speaker-session video. Every video the dataset names is
*listed*: a video that is missing, empty or unreadable gets a row with its ``status`` and a
human ``reason`` instead of silently disappearing, so that the QC table can say why it was
excluded.

Two kinds of problems are distinguished:

* per-video problems (a missing or corrupt file) become a row's ``status``/``reason``;
* whole-dataset problems stop the run with
  :class:`~facedyn.datasets.records.ManifestError`: the root or table does not exist,
  nothing at all can be indexed, a table lacks required columns, the same
  (session_id, speaker_id) pair occurs twice, or ids are unsafe as file-path components.

Modules by source: :mod:`~facedyn.datasets.candor` (CANDOR's conversation folders, also the
synthetic cohort's layout), :mod:`~facedyn.datasets.table` (a user's table) and
:mod:`~facedyn.datasets.manifest` (the manifest file, built from the configured dataset);
:mod:`~facedyn.datasets.records` holds what they share (the record's columns, ids, probing).
"""
