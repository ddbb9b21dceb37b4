"""Input functions and checks shared by all rules. Nothing here may be slow: the
Snakefile is re-parsed by every cluster job."""

from pathlib import Path

ENV = "../../envs/facedyn.yaml"


class ConfigError(Exception):
    """A configuration value that the schema cannot check (e.g. a missing file)."""


def _existing_file(key, value):
    if not Path(value).is_file():
        raise ConfigError(
            f"config key `{key}` points to {value!r}, which is not a file. "
            "Fix the path in your config override file (see config/README.md)."
        )
    return value


def flame_is_synthetic():
    return config["flame"]["model"] == "synthetic"


def flame_model_inputs(wildcards):
    """The head model files: the generated stand-in, or the user's licensed FLAME."""
    if flame_is_synthetic():
        return {
            "model": rules.synthetic_flame.output.model,
            "embedding": rules.synthetic_flame.output.embedding,
        }
    embedding = config["flame"]["landmark_embedding"]
    if embedding is None:
        raise ConfigError(
            "config key `flame.landmark_embedding` is required with a real FLAME model: "
            "point it to DECA's landmark_embedding.npy"
        )
    return {
        "model": _existing_file("flame.model", config["flame"]["model"]),
        "embedding": _existing_file("flame.landmark_embedding", embedding),
    }


def synthetic_cohort_dir():
    return f"resources/synthetic/{config['dataset']['synthetic']['name']}"


def manifest_inputs(wildcards):
    """The synthetic cohort's summary when the pipeline generates its data; else nothing
    (the corpus or table is read in place; its paths were checked while parsing)."""
    kind = config["dataset"]["kind"]
    if kind == "synthetic":
        return [f"{synthetic_cohort_dir()}/cohort.json"]
    if kind == "candor":
        root = Path(config["dataset"]["root"])
        if not root.is_dir():
            raise ConfigError(
                f"config key `dataset.root` points to {str(root)!r}, which is not a folder. "
                "Set it to the CANDOR corpus root (the folder of conversation folders)."
            )
        return []
    _existing_file("dataset.table", config["dataset"]["table"])
    return []


def final_targets():
    """What `snakemake` with no target builds: every stage that exists so far."""
    return ["results/flame/model.json", "results/cohort/manifest.parquet"]
