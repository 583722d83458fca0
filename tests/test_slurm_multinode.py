"""slurm/train.sh on two SLURM nodes (two slurmd on loopback, n1 and n2, one process each):
data-parallel over c10d exactly as two processes on one node, a preempted two-node job
requeued and resumed, and DeepSpeed ZeRO-2 on two nodes exactly as two processes on one node."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.helpers import slurm
from tests.helpers.training import assert_same_run

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
EPOCH_STEPS = 15  # tiny.yaml: 15 optimizer steps per epoch (the batch is global), 2 epochs
STEPS = 2 * EPOCH_STEPS
# One thread per process in every run (train.sh splits --cpus-per-task over a node's
# processes): the same arithmetic, so a two-node run and a one-node run match bit for bit.
TWO_NODES = ("--nodes=2", "--cpus-per-task=1")
ONE_NODE_TWO_PROCESSES = ("--nodes=1", "--cpus-per-task=2")
# What train.log says of the run: two ranks over gloo.
DDP_LINE = re.compile(r"INFO 2 process\(es\) on cpu(:\d)?, distributed=MULTI_CPU,")
DEEPSPEED_LINE = re.compile(r"INFO 2 process\(es\) on cpu(:\d)?, distributed=DEEPSPEED,")
# DeepSpeed fixes the trainable parameters when it starts: one phase for the whole run.
ONE_PHASE = "model.phases=[{train: [head, embedding, lora]}]"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[dict[str, str]]:
    # Ports and job ids apart from tests/test_slurm.py's cluster: job ids from 501 put
    # train.sh's rendezvous ports (29500 + id % 1000) at 30001 and above.
    state = tmp_path_factory.mktemp("slurm-2")
    with slurm.local_cluster(state, port=16937, nodes=2, first_job_id=501) as env:
        yield env


def submit(
    env: dict,
    run_dir: Path,
    root: Path,
    cache: Path,
    *sbatch: str,
    script_env: dict | None = None,
    overrides: tuple[str, ...] = (),
) -> str:
    env = {**env, **(script_env or {})}
    return slurm.submit_training(
        env, run_dir, root, cache, "train.checkpoint_every=5", *overrides, sbatch=sbatch
    )


@pytest.fixture(scope="module")
def runs(cluster, tiny_root, tmp_path_factory) -> dict[str, tuple[str, Path]]:
    """The same training on two nodes and as two processes on one node, side by side."""
    base = tmp_path_factory.mktemp("slurm-2-runs")
    cache = base / "cache"
    two = submit(cluster, base / "two-nodes", tiny_root, cache, *TWO_NODES)
    one = submit(
        cluster,
        base / "one-node",
        tiny_root,
        cache,
        *ONE_NODE_TWO_PROCESSES,
        script_env={"EEG_CPU_PROCESSES": "2"},
    )
    slurm.wait_gone(cluster, two, one)
    return {"two": (two, base / "two-nodes"), "one": (one, base / "one-node")}


def test_two_nodes_train_exactly_as_two_processes_on_one_node(cluster, runs):
    (two, two_dir), (one, one_dir) = runs["two"], runs["one"]
    record = slurm.job_record(cluster, two)
    assert (record["JobState"], record["NumNodes"], record["NodeList"]) == (
        "COMPLETED",
        "2",
        "n[1-2]",
    )
    log = slurm.job_log(two_dir)  # one launcher per node, each with its own machine rank
    assert "node n1: task 0 of 2, 1 process(es)" in log, log[-3000:]
    assert "node n2: task 1 of 2, 1 process(es)" in log
    assert DDP_LINE.search((two_dir / "train.log").read_text())
    record = slurm.job_record(cluster, one)
    assert (record["JobState"], record["NumNodes"]) == ("COMPLETED", "1")
    assert "node n1: task 0 of 1, 2 process(es)" in slurm.job_log(one_dir)
    assert DDP_LINE.search((one_dir / "train.log").read_text())
    assert slurm.train_steps(two_dir) == list(range(1, STEPS + 1))
    assert_same_run(two_dir, one_dir)  # head, embedding, adapter, loss rows, results


def test_a_preempted_two_node_job_requeues_and_resumes_exactly(cluster, tiny_root, runs, tmp_path):
    _, reference = runs["two"]
    run_dir = tmp_path / "preempted"
    job = submit(cluster, run_dir, tiny_root, reference.parent / "cache", *TWO_NODES)
    record, log = slurm.preempt(cluster, job, run_dir, after=EPOCH_STEPS + 1)  # past epoch 1
    assert record["NumNodes"] == "2"
    # Both runs of the job on both nodes.
    assert log.count("node n1: task 0 of 2") == 2 and log.count("node n2: task 1 of 2") == 2
    assert slurm.train_steps(run_dir) == list(range(1, STEPS + 1)), "a step was lost or repeated"
    assert_same_run(run_dir, reference)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the gloo process group is the CPU path")
def test_deepspeed_on_two_cpu_nodes_trains_exactly_as_two_processes_on_one_node(
    cluster, tiny_root, tmp_path
):
    deepspeed = {"EEG_DEEPSPEED_CONFIG": "ds_configs/zero2.json"}
    cache = tmp_path / "cache"
    two_dir, one_dir = tmp_path / "two-nodes", tmp_path / "one-node"
    two = submit(
        cluster,
        two_dir,
        tiny_root,
        cache,
        *TWO_NODES,
        script_env=deepspeed,
        overrides=(ONE_PHASE,),
    )
    one = submit(
        cluster,
        one_dir,
        tiny_root,
        cache,
        *ONE_NODE_TWO_PROCESSES,
        script_env={**deepspeed, "EEG_CPU_PROCESSES": "2"},
        overrides=(ONE_PHASE,),
    )
    slurm.wait_gone(cluster, two, one)
    record = slurm.job_record(cluster, two)
    assert (record["JobState"], record["Restarts"], record["NodeList"]) == (
        "COMPLETED",
        "0",
        "n[1-2]",
    )
    log = slurm.job_log(two_dir)
    assert "node n1: task 0 of 2, 1 process(es)" in log, log[-3000:]
    assert "node n2: task 1 of 2, 1 process(es)" in log and log.rstrip().endswith("finished")
    train_log = (two_dir / "train.log").read_text()
    # One group of two ranks: each process alone would log "1 process(es)" and die at
    # DeepSpeed's batch check.
    assert DEEPSPEED_LINE.search(train_log), train_log[-3000:]
    assert slurm.train_steps(two_dir) == list(range(1, STEPS + 1)), "rank 0 alone logs each step"
    record = slurm.job_record(cluster, one)
    assert (record["JobState"], record["NumNodes"]) == ("COMPLETED", "1")
    assert "node n1: task 0 of 1, 2 process(es)" in slurm.job_log(one_dir)
    assert DEEPSPEED_LINE.search((one_dir / "train.log").read_text())
    assert_same_run(two_dir, one_dir)  # head, embedding, adapter, loss rows, results
