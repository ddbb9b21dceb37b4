"""Speed and memory of encoder training and embedding, and what a CANDOR run would need.

Times the real code paths (`facedyn.identify.train.train_encoder` and `embed`, so batch
gathering from a `FeatureStore`, normalisation, forward, SupCon loss, backward and the AdamW
step are all included) on random data shaped like the default experiment: 8 s windows at
15 fps (T = 120 frames) of F = 53 features (50 expression + 3 jaw). Every encoder
(Conformer, LSTM, TCN, default settings) on CPU with 1 and 2 threads, and on CUDA when a
GPU is visible (with AMP, at the default batch of 64 and at 256).

Memory per batch: on CUDA the peak allocated during one training step
(`torch.cuda.max_memory_allocated`); on CPU the bytes of the tensors autograd saves for the
backward pass (measured with `torch.autograd.graph.saved_tensors_hooks`), which dominate.
The CANDOR estimate (1,429 speakers, 31 M sampled frames) scales these to the corpus:
feature store, window indices, model and optimiser state, epoch time at the measured rate.

Prints a markdown table and writes `results/benchmarks/train.json`.

On a busy machine (more runnable threads than cores) OpenMP's default spin-waiting makes
multi-threaded CPU training many times slower than one thread; `OMP_WAIT_POLICY=PASSIVE` in
the environment (read when torch is imported) removes most of that.

    python benchmarks/train.py [--steps 15] [--threads 1,2] [--encoders conformer,lstm,tcn]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facedyn.dynamics.features import FeatureStore
from facedyn.dynamics.windows import Normalizer, batch, make_windows
from facedyn.identify.encoders import EncoderSettings, build_encoder, count_parameters
from facedyn.identify.train import TrainSettings, embed, speaker_labels, train_encoder

FPS = 15.0
N_FEATURES = 53
CANDOR = {
    "speakers": 1429,
    "frames": 31_000_000,
    "n_folds": 3,
    "stride_s": 2.0,
    "window_s": 8.0,
    "val_fraction": 0.1,
    "epochs": 30,
    "centroid_windows": 32,
}


def random_store(n_videos: int, rows_per_video: int, seed: int = 0) -> FeatureStore:
    """A store of ``n_videos`` gap-free videos (one speaker each) of random features."""
    rng = np.random.default_rng(seed)
    n = n_videos * rows_per_video
    t = np.tile(np.arange(rows_per_video) / FPS, n_videos)
    new_run = np.zeros(n, bool)
    new_run[::rows_per_video] = True
    return FeatureStore(
        session_id=np.array(["s0"] * n_videos, dtype=object),
        speaker_id=np.array([f"p{v:04d}" for v in range(n_videos)], dtype=object),
        reason=[""] * n_videos,
        offsets=np.arange(n_videos + 1, dtype=np.int64) * rows_per_video,
        time_s=t,
        frame=np.tile(np.arange(rows_per_video), n_videos),
        new_run=new_run,
        features=rng.standard_normal((n, N_FEATURES), dtype=np.float32),
        feature_names=[f"f{k}" for k in range(N_FEATURES)],
        rate=FPS,
    )


def saved_activation_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct tensors autograd keeps for backward in one training forward."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.device.type != "meta":
            s = t.untyped_storage()
            seen[s.data_ptr()] = s.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        z = model(x)
    del z
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(b for ptr, b in seen.items() if ptr not in params)


def cuda_step_peak(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, amp: bool) -> int:
    """Peak CUDA bytes of one full training step above the memory held before it."""
    from pytorch_metric_learning.losses import SupConLoss

    loss_fn = SupConLoss(temperature=0.1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(2):  # the first step allocates the optimiser state
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            z = model(x)
        loss = loss_fn(z.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def measure(
    encoder: str,
    device: str,
    threads: int | None,
    batch_size: int,
    steps: int,
    store: FeatureStore,
    normalizer: Normalizer,
    embed_windows: int,
) -> dict[str, Any]:
    """Training and embedding rates of one encoder on one device."""
    windows = make_windows(store, CANDOR["window_s"], 1.0)
    labels, _ = speaker_labels(store, windows)
    m = 4
    ts = TrainSettings(
        epochs=2,
        m_per_class=m,
        classes_per_batch=batch_size // m,
        batches_per_epoch=steps,
        warmup_epochs=1,
        num_threads=threads,
        amp=True,
    )
    es = EncoderSettings(encoder=encoder)
    res = train_encoder(
        store, windows, labels, None, None, normalizer, es, ts, device, seed=0, progress=False
    )
    # epoch 1 warms up (allocator, kernels, caches); epoch 2 is the measurement
    train_rate = steps * res.batch_size / res.history[1]["seconds"]
    subset = windows.subset(np.linspace(0, len(windows) - 1, embed_windows).astype(np.int64))
    saved = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        embed(res.model, store, subset.subset(np.arange(256)), normalizer, device)
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        embed(res.model, store, subset, normalizer, device)
        if device == "cuda":
            torch.cuda.synchronize()
        embed_rate = len(subset) / (time.perf_counter() - t0)
        x = torch.from_numpy(batch(store, windows, np.arange(res.batch_size), normalizer))
        y = torch.from_numpy(labels[: res.batch_size])
        model = build_encoder(es, N_FEATURES).to(device)
        if device == "cuda":
            act = cuda_step_peak(model, x.to(device), y.to(device), amp=True)
            act_kind = "cuda peak of a training step (AMP), above weights"
        else:
            act = saved_activation_bytes(model, x)
            act_kind = "saved for backward (CPU, float32)"
    finally:
        torch.set_num_threads(saved)
    n_params = count_parameters(model)
    return {
        "encoder": encoder,
        "device": device,
        "threads": threads,
        "batch_size": res.batch_size,
        "params": n_params,
        "train_windows_per_s": train_rate,
        "embed_windows_per_s": embed_rate,
        "batch_activation_bytes": act,
        "activation_measure": act_kind,
    }


def gather_ms(
    store: FeatureStore, normalizer: Normalizer, batch_size: int, reps: int = 100, seed: int = 0
) -> float:
    """Milliseconds to gather and normalise one batch of random windows from the store."""
    windows = make_windows(store, CANDOR["window_s"], 1.0)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(windows), size=(reps, batch_size))
    batch(store, windows, index[0], normalizer)
    t0 = time.perf_counter()
    for i in range(reps):
        batch(store, windows, index[i], normalizer)
    return 1e3 * (time.perf_counter() - t0) / reps


def candor_estimate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Memory and time of one CANDOR fold at the measured rates (assumptions in the keys)."""
    c = CANDOR
    stride_rows = round(c["stride_s"] * FPS)
    windows = c["frames"] // stride_rows  # runs are long: boundary losses ignored
    train = windows * (c["n_folds"] - 1) // c["n_folds"]
    val = int(train * c["val_fraction"])
    train -= val
    per_epoch_eval = val + c["speakers"] * c["centroid_windows"]
    store_bytes = c["frames"] * (N_FEATURES * 4 + 8 + 8 + 1)  # features, time_s, frame, run
    out: dict[str, Any] = {
        "assumptions": {**c, "train_share": "(n_folds-1)/n_folds of all windows, less val"},
        "windows_total": windows,
        "train_windows_per_fold": train,
        "val_windows_per_fold": val,
        "feature_store_bytes": store_bytes,
        "window_index_bytes": windows * 12,
        "embeddings_bytes_all_windows": windows * 64 * 4,
        "per_model": {},
    }
    for r in rows:
        key = f"{r['encoder']}/{r['device']}/{r['threads'] or 'all'}t/b{r['batch_size']}"
        params = r["params"] * 4
        epoch_s = train / r["train_windows_per_s"] + per_epoch_eval / r["embed_windows_per_s"]
        out["per_model"][key] = {
            "params_bytes": params,
            "grads_bytes": params,
            "adamw_state_bytes": 2 * params,
            "batch_activation_bytes": r["batch_activation_bytes"],
            "training_bytes": 4 * params + r["batch_activation_bytes"],
            "epoch_s": epoch_s,
            "epochs_30_h": 30 * epoch_s / 3600,
            "embed_all_windows_s": windows / r["embed_windows_per_s"],
        }
    return out


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} GB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=15, help="timed training batches per run")
    ap.add_argument("--threads", default="1,2", help="CPU thread counts to measure")
    ap.add_argument("--encoders", default="conformer,lstm,tcn")
    ap.add_argument("--embed-windows", type=int, default=2048)
    ap.add_argument("--speakers", type=int, default=64, help="speakers of the random store")
    ap.add_argument("--rows-per-speaker", type=int, default=4000)
    ap.add_argument("--out", default="results/benchmarks/train.json")
    args = ap.parse_args()

    store = random_store(args.speakers, args.rows_per_speaker)
    windows = make_windows(store, CANDOR["window_s"], 1.0)
    normalizer = Normalizer.fit(store, windows)
    encoders = args.encoders.split(",")
    runs: list[tuple[str, int | None, int]] = [("cpu", int(t), 64) for t in args.threads.split(",")]
    if torch.cuda.is_available():
        runs += [("cuda", None, 64), ("cuda", None, 256)]
    load_before = os.getloadavg()
    rows = []
    for device, threads, bsz in runs:
        for enc in encoders:
            steps = args.steps * (4 if device == "cuda" else 1)
            row = measure(
                enc,
                device,
                threads,
                bsz,
                steps,
                store,
                normalizer,
                args.embed_windows * (4 if device == "cuda" else 1),
            )
            rows.append(row)
            print(
                f"{enc:9s} {device:4s} threads={threads} batch={bsz}: "
                f"train {row['train_windows_per_s']:.0f} windows/s, "
                f"embed {row['embed_windows_per_s']:.0f} windows/s",
                flush=True,
            )
    torch.set_num_threads(1)
    gather = {
        "batch_64_ms": gather_ms(store, normalizer, 64),
        "batch_256_ms": gather_ms(store, normalizer, 256),
    }
    estimate = candor_estimate(rows)
    result = {
        "shape": {"T": round(CANDOR["window_s"] * FPS), "F": N_FEATURES},
        "encoder_defaults": EncoderSettings().to_dict(),
        "train_defaults": TrainSettings().to_dict(),
        "rows": rows,
        "gather": gather,
        "candor": estimate,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")

    print(
        "\n| encoder | device | threads | batch | params | train windows/s | "
        "embed windows/s | activations/batch | CANDOR epoch | 30 epochs |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        key = f"{r['encoder']}/{r['device']}/{r['threads'] or 'all'}t/b{r['batch_size']}"
        e = estimate["per_model"][key]
        print(
            f"| {r['encoder']} | {r['device']} | {r['threads'] or '-'} | {r['batch_size']} | "
            f"{r['params']:,} | {r['train_windows_per_s']:.0f} | "
            f"{r['embed_windows_per_s']:.0f} | {fmt_bytes(r['batch_activation_bytes'])} | "
            f"{e['epoch_s'] / 60:.0f} min | {e['epochs_30_h']:.1f} h |"
        )
    print(
        f"\nBatch gather + normalise (1 thread): {gather['batch_64_ms']:.2f} ms for 64 "
        f"windows, {gather['batch_256_ms']:.2f} ms for 256."
    )
    print(
        f"CANDOR: {estimate['windows_total']:,} windows (stride {CANDOR['stride_s']} s), "
        f"{estimate['train_windows_per_fold']:,} training windows per fold; feature store "
        f"{fmt_bytes(estimate['feature_store_bytes'])}, window index "
        f"{fmt_bytes(estimate['window_index_bytes'])}, all embeddings "
        f"{fmt_bytes(estimate['embeddings_bytes_all_windows'])}."
    )
    print(f"Load average before/after: {load_before} / {os.getloadavg()} on {os.cpu_count()} CPUs.")
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
