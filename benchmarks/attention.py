"""The Conformer's self-attention in training: ``nn.MultiheadAttention`` against
``facedyn.identify.encoders.self_attention``, which computes the same through
``F.scaled_dot_product_attention``.

One forward and backward pass (input and parameter gradients) of one attention layer shaped
like the default training batch: 64 windows of 8 s at 15 fps (T = 120), width 64, 4 heads, on
one CPU thread. The two are timed in alternating rounds so that a change in the machine's
speed affects both alike; the figure is each one's median over rounds. It first checks that
both give bitwise the same outputs and gradients.

    python benchmarks/attention.py [--rounds 15] [--iters 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from facedyn.identify.encoders import self_attention

Forward = Callable[[torch.Tensor], torch.Tensor]


def step(attn: torch.nn.MultiheadAttention, forward: Forward, h0: torch.Tensor) -> list:
    """One forward and backward pass; the output and every gradient it produced."""
    attn.zero_grad(set_to_none=True)
    h = h0.clone().requires_grad_(True)
    out = forward(h)
    out.backward(torch.ones_like(out))
    return [out.detach(), h.grad, *(p.grad for p in attn.parameters())]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--iters", type=int, default=20, help="passes per timed round")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--frames", type=int, default=120)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    attn = torch.nn.MultiheadAttention(64, 4, batch_first=True)
    h0 = torch.randn(args.batch, args.frames, 64)
    candidates: dict[str, Forward] = {
        "nn.MultiheadAttention": lambda h: attn(h, h, h, need_weights=False)[0],
        "self_attention (SDPA)": lambda h: self_attention(attn, h),
    }
    results = [step(attn, f, h0) for f in candidates.values()]
    if not all(torch.equal(a, b) for a, b in zip(*results, strict=True)):
        raise SystemExit("self_attention differs from nn.MultiheadAttention")
    ms: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(args.rounds):
        for name, forward in candidates.items():
            start = time.perf_counter()
            for _ in range(args.iters):
                step(attn, forward, h0)
            ms[name].append((time.perf_counter() - start) * 1e3 / args.iters)
    base = statistics.median(ms["nn.MultiheadAttention"])
    print(f"one attention layer, forward + backward, batch {args.batch} x {args.frames} x 64,")
    print(f"4 heads, 1 thread (median of {args.rounds} alternating rounds of {args.iters}):\n")
    print("| attention | ms per pass | ratio |\n|---|---|---|")
    for name, times in ms.items():
        med = statistics.median(times)
        print(f"| {name} | {med:.1f} | {med / base:.2f} |")
    print("\noutputs, input and parameter gradients: bitwise equal")


if __name__ == "__main__":
    main()
