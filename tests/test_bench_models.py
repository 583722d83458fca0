"""The model benches' small modes (bench/train_loop.py, gpu_throughput.py, model_memory.py): each
times both sides of its comparison, and each side really ran what it names."""

from __future__ import annotations

import pytest
import torch

from tests.test_bench import assert_figures, rounding_slack, small_run


@pytest.mark.slow
def test_train_loop_small_times_both_loops_over_the_same_steps():
    result = small_run("train_loop.py")
    rates = ("ours_samples_per_s", "trainer_samples_per_s", "ratio")
    cpu = ("ours_samples_per_cpu_s", "trainer_samples_per_cpu_s", "cpu_ratio_median_of_pairs")
    assert_figures(result, *rates, *cpu, "ours_peak_rss_mb", "trainer_peak_rss_mb")
    ours_rate, their_rate = result["ours_samples_per_s"], result["trainer_samples_per_s"]
    assert result["ratio"] == pytest.approx(
        ours_rate / their_rate, abs=rounding_slack(ours_rate, their_rate)
    )
    # One run each: one pair, whose ratio is the medians' ratio.
    assert result["ratio_each_pair"] == [result["ratio_median_of_pairs"]] == [result["ratio"]]
    ours_cpu, their_cpu = result["ours_samples_per_cpu_s"], result["trainer_samples_per_cpu_s"]
    assert result["cpu_ratio_each_pair"] == [result["cpu_ratio_median_of_pairs"]]
    assert result["cpu_ratio_median_of_pairs"] == pytest.approx(
        ours_cpu / their_cpu, abs=rounding_slack(ours_cpu, their_cpu)
    )
    # 2 subjects x 12 trials x 5 windows; 8 trials' worth trains, in batches of 8, 1 epoch.
    assert result["steps"] == {"ours": 10, "trainer": 10}
    # Each system's optimizer steps came from its own loop: the Trainer's, and this project's.
    assert result["stepped_by"]["trainer"] == ["transformers.trainer"]
    [ours] = result["stepped_by"]["ours"]
    assert ours.startswith("eeg_emotion.training."), ours
    each = result["samples_per_s_each_run"]
    assert each["ours"] == [result["ours_samples_per_s"]]
    assert each["trainer"] == [result["trainer_samples_per_s"]]


# bench/gpu_throughput.py's small mode: tests/test_gpu_all.py (the device script's rehearsal).


@pytest.mark.slow
def test_model_memory_small_measures_every_configuration():
    result = small_run("model_memory.py")
    assert (result["batch"], result["tokens"], result["layers"]) == (2, 32, 1)
    ratios = ("frozen_vs_lora_step_ratio", "embedding_phase_vs_lora_step_ratio")
    assert_figures(result, "step_time_ratio", *ratios)
    runs = result["results"]
    assert set(runs) == {"original", "ours_lora", "ours_frozen", "ours_embedding_phase"}
    for run in runs.values():
        assert_figures(run, "step_s", "tokens_per_s", "rss_before_step_mb", "trainable_params")
        assert run["step_peak_mb"] >= 0
    # What each phase trains: the head alone, then + LoRA, or + the EEG embedding.
    trained = {k: v["trainable_params"] for k, v in runs.items()}
    assert trained["ours_frozen"] < trained["ours_lora"] < trained["ours_embedding_phase"]
    # The original approach runs the causal LM; this classifier the base transformer alone.
    models = {k: v["transformer"] for k, v in runs.items()}
    assert models.pop("original") == "LlamaForCausalLM"
    assert set(models.values()) == {"LlamaModel"}
    if result["memory_ratio"] is not None:
        assert result["memory_ratio"] > 0
    # Whether bf16 was native or emulated where the figures were taken.
    assert result["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
