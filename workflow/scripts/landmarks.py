"""Track one face and write its 68-point landmarks (never fails on a bad video)."""

from facedyn.face.backends import make_backend
from facedyn.face.extract import run_landmarks
from facedyn.runtime import provenance, start_job

start_job(snakemake.log[0], snakemake.threads)
settings = snakemake.params.settings
name = settings["backend"]
backend = make_backend(name, **settings.get(name, {}))
row = snakemake.params.row
with open(snakemake.log[0], "a") as progress:
    run_landmarks(
        row["video"],
        snakemake.output[0],
        backend,
        settings,
        ids={"session_id": row["session_id"], "speaker_id": row["speaker_id"]},
        provenance=provenance(snakemake.config, inputs=snakemake.input),
        progress=progress,
    )
