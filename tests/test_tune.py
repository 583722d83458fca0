"""eeg-emotion tune: Optuna's search chosen on val only, each trial an ordinary run folder.

The space file is checked before any work; a search on synthetic DEAP gives the same trials and
the same best val score when the test trials' labels are all flipped (no trial reads test), its
pruner stops a trial at a val evaluation, each trial is a W&B run of job type tune, and
--finish trains the best settings once more (the one reading of test) and writes the report.
The SLURM test runs the shipped space on a 2-task array and a local process together.
"""

from __future__ import annotations

import json
import pickle
import re
import time
from pathlib import Path

import pytest

from eeg_emotion.cli import tune
from eeg_emotion.data.deap_pickle import write_subject
from tests.helpers import slurm
from tests.helpers.paths import ROOT

TINY = str(ROOT / "configs" / "tiny.yaml")
SPACE = str(ROOT / "configs" / "tune_space.yaml")
# Each trial a few seconds of CPU: one epoch (the head and embedding phase) of 16-window steps,
# LoRA on one projection.
CHEAP = [
    "train.epochs=1",
    "train.batch_size=16",
    "train.log_every=1",
    "model.lora.target_modules=[q_proj]",
]


def tune_main(*argv: str) -> int:
    return tune.main(list(argv), prog="eeg-emotion tune")


def study_of(folder: Path):
    from eeg_emotion.tuning.study import open_study, read_record

    return open_study(folder, read_record(folder))


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def train_steps(run_dir: Path) -> list[int]:
    return [r["step"] for r in rows(run_dir) if "train/loss" in r]


BAD_SPACES = [
    (
        "train.lr_hed: {low: 1.0e-4, high: 1.0e-2}",
        "params.train.lr_hed: unknown key 'train.lr_hed'",
    ),
    ("train.lr_head: {low: 1.0e-4, high: 20.0}", "params.train.lr_head: train.lr_head: must be"),
    ("train.lr_head: {low: 1.0e-2, high: 1.0e-4}", "params.train.lr_head: low must be below high"),
    ("train.lr_head: {low: 0.0, high: 1.0e-2, log: true}", "a log range needs low > 0"),
    ("train.lr_head: {low: 1.0e-4, high: .inf}", "params.train.lr_head.high: must be a finite"),
    ("model.lora.r: {low: 4.0, high: 16.0}", "params.model.lora.r: model.lora.r: must be a whole"),
    ("model.lora.r: {choices: [4, [8]]}", "params.model.lora.r.choices: each choice is"),
    ("data.split.protocol: {choices: [trial, kfold]}", "params.data.split.protocol: data.split is"),
    ("data.window: {choices: [2s, -1s]}", "params.data.window: data.window: "),
]


@pytest.mark.parametrize(("param", "fragment"), BAD_SPACES)
def test_a_bad_space_is_one_error_naming_the_file_and_key_and_writes_nothing(
    tmp_path, capsys, param, fragment
):
    space = tmp_path / "space.yaml"
    space.write_text(f"params:\n  {param}\n")
    study = tmp_path / "study"
    assert (
        tune_main("--config", TINY, "--space", str(space), "--study", str(study), "--trials", "2")
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith(f"error: {space}: ") and fragment in err and err.count("\n") == 1, err
    assert not study.exists()


def test_the_shipped_space_is_recorded_and_a_changed_rerun_refused(tmp_path, capsys):
    study = tmp_path / "study"
    args = ["--config", TINY, "--space", SPACE, "--study", str(study)]
    assert tune_main(*args, "--trials", "12", "--prepare-only") == 0
    record = json.loads((study / "study.json").read_text())
    assert set(record["space"]["params"]) == {
        "train.lr_head",
        "train.lr_lora",
        "model.lora.r",
        "data.window",
    }
    before = sorted(p.name for p in study.iterdir())
    assert tune_main(*args, "--trials", "13", "--prepare-only") == 2
    assert "is a study of other budget (--trials 12, not 13)" in capsys.readouterr().err
    assert tune_main(*args, "--trials", "12", "--prepare-only", "train.weight_decay=0.1") == 2
    assert "is a study of other settings (config + overrides)" in capsys.readouterr().err
    assert tune_main(*args, "--trials", "12", "output_dir=x") == 2
    assert "set by tune itself" in capsys.readouterr().err
    assert sorted(p.name for p in study.iterdir()) == before


def flip_test_labels(root: Path, out: Path, test: list[tuple[int, int]]) -> None:
    """A copy of synthetic DEAP whose test trials' ratings are mirrored (r -> 10 - r): every
    test label of every target is the other class."""
    out.mkdir()
    for path in sorted(root.glob("s*.dat")):
        with path.open("rb") as f:
            stored = pickle.load(f, encoding="latin1")
        labels = stored["labels"].copy()
        subject = int(path.stem[1:])
        for s, t in test:
            if s == subject:
                labels[t] = 10 - labels[t]
        write_subject(out / path.name, stored["data"], labels)


@pytest.mark.slow
def test_the_search_reads_val_only_prunes_and_its_best_reads_test_once(
    tiny_root, tmp_path, in_process, monkeypatch
):
    import wandb
    from optuna.trial import TrialState

    from tests.test_wandb_dashboard import OfflineRun

    # Folds over videos: which trials are test does not depend on their labels, so the copy
    # with flipped test labels has the same split.
    space = tmp_path / "space.yaml"
    space.write_text(
        "sampler: {kind: tpe, seed: 3, startup_trials: 2}\n"
        "pruner: {kind: median, startup_trials: 1}\n"
        "params:\n  train.lr_head: {choices: [0.01, 1.0e-5]}\n"
    )
    common = [
        *CHEAP,
        "data.split.protocol=cross_trial",
        "data.split.num_folds=4",
        "train.eval_every=2",
        "train.best_metric=trial_loss",
        f"data.cache_dir={tmp_path / 'cache'}",
    ]

    def search(name: str, root: Path, *extra: str) -> Path:
        study = tmp_path / name
        args = ["--config", TINY, "--space", str(space), "--study", str(study), "--trials", "2"]
        assert tune_main(*args, f"data.root={root}", *common, *extra) == 0
        return study

    monkeypatch.setenv("WANDB_MODE", "offline")
    a = search("study-a", tiny_root, "train.tracker.kind=wandb")
    split = json.loads((a / "trial-0" / "splits.json").read_text())
    flip_test_labels(tiny_root, tmp_path / "flipped", [tuple(k) for k in split["test"]])
    b = search("study-b", tmp_path / "flipped")
    assert json.loads((b / "trial-0" / "splits.json").read_text()) == split

    trials_a, trials_b = study_of(a).get_trials(), study_of(b).get_trials()
    seen = [(t.params, t.state, t.value, t.intermediate_values) for t in trials_a]
    assert seen == [(t.params, t.state, t.value, t.intermediate_values) for t in trials_b]
    assert study_of(a).best_value == study_of(b).best_value
    assert [t.state for t in trials_a] == [TrialState.COMPLETE, TrialState.PRUNED]
    pruned = a / "trial-1"
    assert trials_a[1].params != trials_a[0].params
    assert list(trials_a[1].intermediate_values) == [2] and train_steps(pruned) == [1, 2]
    assert train_steps(a / "trial-0") == list(range(1, 7))  # 6 steps: not pruned
    for study in (a, b):
        for run in sorted(study.glob("trial-*")):  # no trial evaluated test
            assert not (run / "results.json").exists(), run
            assert not (run / "predictions_test.npz").exists(), run
            assert not any(k.startswith("test/") for r in rows(run) for k in r), run
            assert json.loads((run / "status.json").read_text())["status"] == "finished"
    for n in (0, 1):
        wandb.teardown()  # its service writes the run's file in the background
        offline = OfflineRun(a / f"trial-{n}")
        assert (offline.run.job_type, offline.run.run_group) == ("tune", "study-a")
        assert offline.run.display_name == f"study-a-trial-{n}"

    args = ["--config", TINY, "--space", str(space), "--study", str(a), "--trials", "2", "--finish"]
    assert tune_main(*args, f"data.root={tiny_root}", *common, "train.tracker.kind=wandb") == 0
    final = json.loads((a / "final" / "results.json").read_text())
    assert final["best"]["value"] == study_of(a).best_value  # the best trial, trained again
    tested = [r for r in rows(a / "final") if any(k.startswith("test/") for k in r)]
    assert len(tested) == 1  # the test split, read once
    assert (a / "baseline-band_power_lr" / "results.json").exists()
    report = (a / "study.md").read_text()
    assert "- Trials: 2 of a budget of 2 (1 complete, 1 pruned)" in report
    assert "- Settings compared: 2 distinct" in report
    assert f"- Best val score: {study_of(a).best_value:.4f} (trial 0" in report
    for model in ("tuned model", "band-power + LR", "majority class", "subject majority"):
        assert f"| trials | valence | {model} |" in report
    for name in ("optimization_history", "param_importances"):
        assert f"![{name.replace('_', ' ')}](plots/{name}.png)" in report
        assert (a / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    wandb.teardown()
    offline = OfflineRun(a)  # the study's own run: the report's figures and numbers
    assert (offline.run.job_type, offline.run.run_group) == ("tune", "study-a")
    assert offline.summary()["study/best_val"] == study_of(a).best_value
    assert {"tune/optimization_history", "tune/param_importances"} <= set(offline.history())


def running_trial_of_a_worker(study: Path, timeout: float = 300) -> tuple[int, str, str]:
    """A trial that an array task is setting up or has trained at most 2 of its ~7 steps (its
    run folder holds its lock): a stop asked now meets a stop check before the run ends, however
    slowly the signal travels (batch script, worker, trial). That task's job id and its name
    (<array>_<task>)."""
    from optuna.trial import TrialState

    deadline = time.time() + timeout
    while time.time() < deadline:
        if (study / "journal.log").exists():
            for t in study_of(study).get_trials(states=(TrialState.RUNNING,)):
                owner = t.user_attrs.get("owner") or {}
                run = study / f"trial-{t.number}"
                early = not (run / "metrics.jsonl").exists() or len(slurm.train_steps(run)) <= 2
                if owner.get("slurm_task") and (run / ".lock").exists() and early:
                    return t.number, owner["slurm_job"], owner["slurm_task"]
        time.sleep(0.2)
    raise AssertionError(f"no worker trained a trial of {study} in {timeout} s")


def wait_released(study: Path, number: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        trial = study_of(study).get_trials()[number]
        if trial.user_attrs.get("released"):
            return
        assert trial.state.name == "RUNNING", f"trial {number} ended without a stop: {trial}"
        time.sleep(0.2)
    raise AssertionError(f"trial {number} was not released in {timeout} s")


@pytest.mark.slow
@pytest.mark.cluster
def test_a_slurm_array_and_a_local_process_run_one_study_through_a_preemption(
    tiny_root, tmp_path, in_process
):
    from optuna.trial import TrialState

    study = tmp_path / "study"
    data = [
        f"data.root={tiny_root}",
        f"data.cache_dir={tmp_path / 'cache'}",
        *CHEAP,
        "train.stop_check_every=1",
    ]
    space = ["configs/tiny.yaml", "configs/tune_space.yaml", str(study)]
    # Ports and job ids apart from the other cluster tests' clusters; one CPU per task.
    with slurm.local_cluster(tmp_path / "slurm", port=16957, first_job_id=901) as env:
        env = {**env, "EEG_SBATCH_ARGS": "--cpus-per-task=1"}
        out = slurm.sh(env, "bash", "slurm/tune.sh", *space, "12", "2", *data)
        found = re.search(r"array job (\d+) \(2 workers\), final job (\d+)", out)
        assert found, out
        array, final = found.groups()
        # The final job waits for the whole array; its work (--finish) is the search test's.
        record = slurm.job_record(env, final)
        assert record["JobState"] == "PENDING" and f"afterany:{array}" in record["Dependency"]
        slurm.sh(env, "scancel", final)
        # A worker preempted while it sets up or trains a trial (USR1 to the batch script, as
        # --signal=B:USR1@... does): the trial stops with a checkpoint and is released.
        preempted, job, task = running_trial_of_a_worker(study)
        slurm.sh(env, "scancel", "--signal=USR1", "--batch", task)  # that task alone
        jobs = slurm.sh(env, "squeue", "-h", "-r", "-o", "%A", "-j", array).split()
        assert len(jobs) == 2 and job in jobs, jobs  # the tasks' own ids, as SLURM_JOB_ID
        wait_released(study, preempted)
        # A local process pulls from the same study until the budget is spent.
        local = ["--config", TINY, "--space", SPACE, "--study", str(study), "--trials", "12"]
        assert tune_main(*local, *data) == 0
        slurm.wait_gone(env, *jobs)
        record = slurm.job_record(env, task)
        assert (record["JobState"], record["Restarts"]) == ("COMPLETED", "1"), record
        log = (study / "logs" / f"worker-{task}.log").read_text()
        assert "got a stop signal" in log and "stopped with a checkpoint: requeueing" in log
        assert log.rstrip().endswith("finished")

    trials = study_of(study).get_trials()
    assert [t.number for t in trials] == list(range(12))
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert sorted(p.name for p in study.glob("trial-*")) == sorted(f"trial-{n}" for n in range(12))
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 12
    # The local process and both tasks ran trials; the preempted one, on two workers.
    workers = {t.number: [w["slurm_job"] for w in t.user_attrs["workers"]] for t in trials}
    assert {job for ran in workers.values() for job in ran} == {None, *jobs}, workers
    assert len(workers[preempted]) == 2 and workers[preempted][0] == job, workers
    assert all(len(ran) == 1 for n, ran in workers.items() if n != preempted), workers
    for t in trials:  # every step trained once, the preempted trial's included
        steps = train_steps(study / f"trial-{t.number}")
        assert steps == list(range(1, len(steps) + 1)) and steps, (t.number, steps)
    again = (study / f"trial-{preempted}" / "train.log").read_text()
    assert "stop requested (SIGUSR1)" in again and re.search(r"resumed from \S+/step-\d+", again)
    # The best trial's val score is the best in the journal, and its run folder's.
    best = study_of(study).best_trial
    assert best.value == max(t.value for t in trials if t.state == TrialState.COMPLETE)
    val = json.loads((study / f"trial-{best.number}" / "best" / "val_metrics.json").read_text())
    assert val["mean_balanced_accuracy"] == best.value == best.user_attrs["val_score"]
