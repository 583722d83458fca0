"""slurm/train.sh on two SLURM nodes (two slurmd on loopback, n1 and n2, one process each), under
DeepSpeed ZeRO-2 as ds_configs/zero2.json ships it: data parallel over c10d, a stop asked of one
rank alone in its second epoch, requeued and resumed on both nodes, exactly as two uninterrupted
processes on one node. (One scenario for multi-node, DeepSpeed and a stop; a preempted one-node
job, its batch script signalled: tests/test_slurm.py; data-parallel processes without DeepSpeed:
tests/test_train.py.)"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from eeg_emotion.training import checkpoint
from tests.helpers import slurm
from tests.helpers.training import assert_resumed_exactly, assert_same_run

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
# tiny.yaml's 120 training windows in global batches of 16 (8 per rank): 7 optimizer steps per
# epoch, 2 epochs. Half tiny.yaml's steps: each is a collective between ranks that share 2 cores.
BATCH = "train.batch_size=16"
EPOCH_STEPS = 7
STEPS = 2 * EPOCH_STEPS
STOP_STEP = EPOCH_STEPS + 1  # asked for inside epoch 1: resumed mid-epoch
# One thread per process in every run (train.sh splits --cpus-per-task over a node's
# processes): the same arithmetic, so a two-node run and a one-node run match bit for bit.
TWO_NODES = ("--nodes=2", "--cpus-per-task=1")
ONE_NODE_TWO_PROCESSES = ("--nodes=1", "--cpus-per-task=2")
# What train.log says of the run: two ranks over gloo, under DeepSpeed.
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
        env, run_dir, root, cache, "train.checkpoint_every=5", BATCH, *overrides, sbatch=sbatch
    )


@pytest.fixture(scope="module")
def runs(cluster, tiny_root, tmp_path_factory) -> dict:
    """The same DeepSpeed training on two nodes and as two processes on one node, side by side;
    the two-node job is asked to stop by a SIGUSR1 to rank 1's worker alone, in epoch 1."""
    if torch.cuda.is_available():
        pytest.skip("the gloo process group is the CPU path")
    base = tmp_path_factory.mktemp("slurm-2-runs")
    cache = base / "cache"
    deepspeed = {"EEG_DEEPSPEED_CONFIG": "ds_configs/zero2.json"}
    two = submit(
        cluster,
        base / "two-nodes",
        tiny_root,
        cache,
        *TWO_NODES,
        script_env=deepspeed,
        overrides=(ONE_PHASE,),
    )
    one = submit(
        cluster,
        base / "one-node",
        tiny_root,
        cache,
        *ONE_NODE_TWO_PROCESSES,
        script_env={**deepspeed, "EEG_CPU_PROCESSES": "2"},
        overrides=(ONE_PHASE,),
    )
    two_dir = base / "two-nodes"
    slurm.wait_for_steps(cluster, two, two_dir, STOP_STEP, timeout=600)
    os.kill(rank_worker(two_dir, 1), signal.SIGUSR1)
    # The stop's checkpoint as saved, before the requeued run goes on (and rotates it away):
    # SLURM holds the requeued job until wait_gone releases it.
    status = two_dir / "status.json"
    deadline = time.time() + 300
    while time.time() < deadline and not (
        status.exists() and json.loads(status.read_text())["status"] == "stopped"
    ):
        time.sleep(0.2)
    newest = two_dir / "checkpoints" / f"step-{json.loads(status.read_text())['global_step']}"
    stop = {
        "checkpoint": newest,
        "run": checkpoint.read_state(newest)["run"],
        "random_states": sorted(p.name for p in newest.glob("random_states_*.pkl")),
    }
    slurm.wait_gone(cluster, two, one)
    return {"two": (two, two_dir), "one": (one, base / "one-node"), "stop": stop}


def rank_worker(run_dir: Path, rank: int) -> int:
    """The PID of the training process of global rank `rank` that writes to `run_dir` (on
    whichever node: the nodes all run on this machine)."""
    wanted = f"output_dir={run_dir}".encode()
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # not a process, or gone
        script = any(a.endswith(b"launch/train.py") for a in args[:3])  # not a launcher
        if script and wanted in args and f"RANK={rank}".encode() in env:
            return int(proc.name)
    raise AssertionError(f"no training process of rank {rank} for {run_dir}")


def test_two_nodes_train_exactly_as_two_processes_on_one_node(cluster, runs):
    (two, two_dir), (one, one_dir) = runs["two"], runs["one"]
    record = slurm.job_record(cluster, two)  # stopped, requeued by train.sh, then done
    assert (record["JobState"], record["Restarts"], record["NumNodes"], record["NodeList"]) == (
        "COMPLETED",
        "1",
        "2",
        "n[1-2]",
    )
    log = slurm.job_log(two_dir)  # one launcher per node, each with its own machine rank
    assert log.count("node n1: task 0 of 2, 1 process(es)") == 2, log[-3000:]
    assert log.count("node n2: task 1 of 2, 1 process(es)") == 2
    assert "stopped with a checkpoint: requeueing" in log and log.rstrip().endswith("finished")
    # One group of two ranks under DeepSpeed, in both runs of the job: each process alone
    # would log "1 process(es)" and die at DeepSpeed's batch check.
    train_log = (two_dir / "train.log").read_text()
    assert len(DEEPSPEED_LINE.findall(train_log)) == 2, train_log[-3000:]
    record = slurm.job_record(cluster, one)
    assert (record["JobState"], record["NumNodes"]) == ("COMPLETED", "1")
    assert "node n1: task 0 of 1, 2 process(es)" in slurm.job_log(one_dir)
    assert DEEPSPEED_LINE.search((one_dir / "train.log").read_text())
    assert slurm.train_steps(two_dir) == list(range(1, STEPS + 1))
    assert_same_run(two_dir, one_dir)  # head, embedding, adapter, loss rows, results


def test_a_stop_asked_of_one_rank_stops_both_and_resumes_exactly(runs):
    """Rank 0 saw no signal and no STOP file of its own and must still stop with rank 1, in the
    same step (else one rank waits for the other in a collective until killed); each rank's
    random state is saved, so that the default LoRA dropout draws the same masks again."""
    (_, two_dir), (_, one_dir) = runs["two"], runs["one"]
    log = (two_dir / "train.log").read_text()  # rank 0's
    expected = "stop requested (on another rank; this one had no signal and no STOP file)"
    stopped = re.findall(re.escape(expected) + r": checkpoint saved at step (\d+)", log)
    assert len(stopped) == 1, log[-3000:]
    stop = runs["stop"]
    newest = two_dir / "checkpoints" / f"step-{stopped[0]}"
    assert stop["checkpoint"] == newest
    saved = stop["run"]
    assert saved["epoch"] == 1 and 0 < saved["batches_done"] < EPOCH_STEPS, saved  # mid-epoch
    assert stop["random_states"] == ["random_states_0.pkl", "random_states_1.pkl"]
    assert f"resumed from {newest}\n" in log
    assert json.loads((two_dir / "status.json").read_text())["status"] == "finished"
    assert_resumed_exactly(two_dir, one_dir, steps=STEPS)


def test_the_engine_saved_the_trainable_parameters_only(runs):
    """The run's last checkpoint as DeepSpeed's engine saved it: LoRA, head and embedding, with
    the classifier's own files beside, and no frozen base weights."""
    folders = (runs["two"][1] / "checkpoints").iterdir()
    ckpt = max(folders, key=lambda p: int(p.name.split("-")[1]))
    states = sorted(ckpt.rglob("*model_states.pt"))
    assert states, list(ckpt.rglob("*"))
    module = torch.load(states[0], map_location="cpu", weights_only=False)["module"]
    assert module and all("lora_" in k or k.startswith(("head.", "embedding.")) for k in module)
    trained = sum(p.stat().st_size for p in (ckpt / "model_0").rglob("*.safetensors"))
    assert states[0].stat().st_size < 1.5 * trained  # no frozen base weights
