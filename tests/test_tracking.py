"""Throughput and MFU over several processes: per-rank and global figures, and the FLOPs of
the true sequence length (tokens per sample over all ranks)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import torch

from eeg_emotion.training import tracking

# Llama-3.1-8B's shape: hidden 4096, 32 layers, 8 of 32 heads for keys and values, MLP 14336.
LLAMA_8B = SimpleNamespace(
    hidden_size=4096,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    intermediate_size=14336,
)
PEAK = 989e12  # H100 SXM, dense bf16
RANKS = 8
SAMPLES = 4  # windows per rank since the last row (a global micro-batch of 32)
# Every rank's real tokens: windows of 600 to 1440 tokens (a mean of 1020), so no rank's count
# times the number of ranks comes near the sum.
TOKENS = [4 * (600 + 120 * r) for r in range(RANKS)]
ELAPSED = 0.35  # seconds since the last row: ~11,500 tokens/s per GPU


def hand_flops_per_token(seq_len: float) -> float:
    """4 N + 12 L h T, written out: N = 32 x (2 h^2 + 2 h kv + 3 h i) matmul weights."""
    h, layers, kv, inter = 4096, 32, 1024, 14336
    n = layers * (2 * h * h + 2 * h * kv + 3 * h * inter)
    return 4 * n + 12 * layers * h * seq_len


def test_throughput_figures_of_eight_ranks_name_per_rank_and_global_rates():
    counts = [[SAMPLES, t] for t in TOKENS]
    row = tracking.throughput_figures(counts, rank=3, elapsed=ELAPSED)
    assert row["train/samples_per_s"] == RANKS * SAMPLES / ELAPSED
    assert row["train/tokens_per_s"] == sum(TOKENS) / ELAPSED
    assert row["train/samples_per_s_per_rank"] == SAMPLES / ELAPSED
    assert row["train/tokens_per_s_per_rank"] == TOKENS[3] / ELAPSED
    assert row["train/seq_len"] == sum(TOKENS) / (RANKS * SAMPLES) == 1020


class EightRanks:
    """Accelerator stand-in for rank 3 of 8: `gather` puts this rank's counts among the other
    ranks' (as accelerator.gather concatenates every rank's tensor in rank order)."""

    device = torch.device("cpu")
    process_index = 3
    num_processes = RANKS

    def gather(self, mine: torch.Tensor) -> torch.Tensor:
        others = torch.tensor([[SAMPLES, t] for t in TOKENS], dtype=mine.dtype)
        others[self.process_index] = mine
        return others.reshape(-1)

    def reduce(self, value: torch.Tensor, how: str) -> torch.Tensor:
        assert how == "mean"
        return value


def test_mfu_at_eight_processes_uses_the_true_sequence_length(monkeypatch):
    monkeypatch.setattr(tracking, "peak_bf16_flops", lambda name=None: PEAK)
    meter = tracking.Throughput()
    mask = torch.zeros(SAMPLES, 1100, dtype=torch.long)  # this rank's windows, padded to 1100
    for i, length in enumerate((958, 960, 962, 960)):  # 3840 real tokens = TOKENS[3]
        mask[i, :length] = 1
    assert mask.sum() == TOKENS[3]
    meter.add(torch.tensor(0.7), mask)
    classifier = SimpleNamespace(config=LLAMA_8B, backbone_grad=True)
    meter.start = time.perf_counter() - ELAPSED  # as if the micro-batch took ELAPSED seconds
    row = meter.row(EightRanks(), classifier)

    # The clock's ELAPSED is only near 0.35 s; quotients of two rates cancel it and are exact.
    assert row["train/tokens_per_s"] / row["train/tokens_per_s_per_rank"] == pytest.approx(
        sum(TOKENS) / TOKENS[3], rel=1e-9
    )
    assert row["train/samples_per_s"] / row["train/samples_per_s_per_rank"] == pytest.approx(
        RANKS, rel=1e-9
    )
    assert row["train/tokens_per_s"] / row["train/samples_per_s"] == pytest.approx(
        sum(TOKENS) / (RANKS * SAMPLES), rel=1e-9
    )
    tokens_per_s = sum(TOKENS) / ELAPSED
    assert row["train/tokens_per_s"] == pytest.approx(tokens_per_s, rel=1e-2)
    assert row["train/samples_per_s"] == pytest.approx(RANKS * SAMPLES / ELAPSED, rel=1e-2)
    assert row["train/samples_per_s_per_rank"] == pytest.approx(SAMPLES / ELAPSED, rel=1e-2)
    assert row["train/tokens_per_s_per_rank"] == pytest.approx(TOKENS[3] / ELAPSED, rel=1e-2)
    true_len = sum(TOKENS) / (RANKS * SAMPLES)
    expected = tokens_per_s * hand_flops_per_token(round(true_len)) / (PEAK * RANKS)
    assert row["train/mfu"] == pytest.approx(expected, rel=1e-2)
    assert 0.3 < expected < 0.4  # ~10k tokens/s per H100 at ~1000 tokens: about a third
    # A rank's samples against every rank's tokens: 8 x the length, an attention term 8 x too big.
    wrong_len = sum(TOKENS) / SAMPLES
    wrong = tokens_per_s * hand_flops_per_token(wrong_len) / (PEAK * RANKS)
    assert wrong > 1.2 * row["train/mfu"]
