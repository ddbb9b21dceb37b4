"""The synthetic cohort: a CANDOR-shaped corpus of rendered conversations with ground truth.

The embedded default dataset, generated offline from the procedural head
(:mod:`facedyn.flame.synthetic`). Modules by concern: :mod:`~facedyn.synthetic.generate`
(the cohort's plan, its rendering and its files), :mod:`~facedyn.synthetic.layout` (where the
files lie), :mod:`~facedyn.synthetic.behaviour` (speakers' dynamic signatures and
conversations), :mod:`~facedyn.synthetic.appearance` (face photographs and lighting),
:mod:`~facedyn.synthetic.scene` and :mod:`~facedyn.synthetic.raster` (drawing the textured
head), :mod:`~facedyn.synthetic.contact` (lips and lids stop at contact),
:mod:`~facedyn.synthetic.dense_calibration` (where MediaPipe's points sit on the head) and
:mod:`~facedyn.synthetic.probe_videos` (small-face and face-free videos for the landmark
stage's tests and benchmarks).

This package's own module imports nothing, so :mod:`~facedyn.synthetic.layout` stays cheap
to import while the workflow's DAG is built.
"""
