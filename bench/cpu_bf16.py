"""bf16 against fp32 on this CPU: one linear layer of the embedded backbone's MLP shape (576 ->
1536), forward and backward over 16 windows x 128 tokens, one thread, medians of --repeats.

    python bench/cpu_bf16.py [--repeats 5] [--small]   # --small: 1 window, for the tests

A CPU without AVX512-BF16 (or AMX) emulates bf16 matmuls; the ratio says what a bf16 run costs
there (why `bench/synthetic_benchmark.py --budget cpu` trains in fp32).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def step_seconds(dtype: torch.dtype, repeats: int, windows: int) -> tuple[float, float]:
    """Median seconds of the forward and of the backward of x @ W^T in `dtype`."""
    torch.manual_seed(0)
    x = torch.randn(windows * 128, 576, dtype=dtype, requires_grad=True)
    w = torch.randn(1536, 576, dtype=dtype, requires_grad=True)
    forward, backward = [], []
    for _ in range(repeats + 1):  # the first is a warm-up
        t0 = time.perf_counter()
        y = torch.nn.functional.linear(x, w)
        t1 = time.perf_counter()
        y.sum().backward()
        t2 = time.perf_counter()
        forward.append(t1 - t0)
        backward.append(t2 - t1)
    return statistics.median(forward[1:]), statistics.median(backward[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--small", action="store_true", help="1 window instead of 16")
    args = p.parse_args()
    torch.set_num_threads(1)
    windows = 1 if args.small else 16
    fp32 = step_seconds(torch.float32, args.repeats, windows)
    bf16 = step_seconds(torch.bfloat16, args.repeats, windows)
    for name, a, b in (("forward", fp32[0], bf16[0]), ("backward", fp32[1], bf16[1])):
        print(f"{name}: fp32 {a * 1e3:.1f} ms, bf16 {b * 1e3:.1f} ms, bf16 / fp32 {b / a:.1f}x")


if __name__ == "__main__":
    main()
