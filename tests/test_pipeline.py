"""Pipeline: tokenizer shapes and coverage, train-only fitting, splits, cache, determinism."""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import pickle
import shutil
import time

import numpy as np
import pytest

from eeg_emotion import fileio
from eeg_emotion.data import pipeline, stages
from eeg_emotion.data.dataset import Collator, TokenDataset
from eeg_emotion.data.deap_pickle import write_subject
from eeg_emotion.data.preprocessor import Preprocessor, Trials
from eeg_emotion.data.readers import deap
from eeg_emotion.data.splits import PARTS, check_disjoint
from eeg_emotion.errors import ConfigError, DataError
from tests.helpers.paths import TINY, data_settings

# tiny.yaml: 13 s trials - 3 s baseline = 10 s = 1280 samples; 2 s windows, stride 2 s.
WINDOWS_PER_TRIAL = 5
ROWS = TINY.subjects * TINY.trials * WINDOWS_PER_TRIAL


def test_band_power_shapes_layout_and_summary(tiny_root, tmp_path):
    data = pipeline.build(data_settings(tiny_root, tmp_path))
    # 2 sub-windows x 32 channels x 4 bands
    assert data.tokens.shape == (ROWS, 256)
    assert data.meta["coverage"] == 1.0 and data.meta["tokens_per_window"] == 256
    assert data.tokens.max() < 8 and data.vocab_size == 9 and data.pad_id == 8
    assert data.layout.channel.tolist()[:5] == [0, 0, 0, 0, 1]
    assert data.layout.band.tolist()[:5] == [0, 1, 2, 3, 0]
    assert data.layout.time.tolist()[-1] == 1
    assert data.rows[:6].tolist() == [[1, 0, w] for w in range(5)] + [[1, 1, 0]]
    text = data.summary()
    for part in PARTS:
        assert part in text
    assert "band_power: 256 tokens/window" in text and "high if rating > 5.0" in text


@pytest.mark.parametrize(
    ("layout", "decimate", "first_channels"),
    [("time_major", 4, [0, 1, 2]), ("channel_major", 8, [0, 0, 0])],
)
def test_symbols_shapes_and_layout(tiny_root, tmp_path, layout, decimate, first_channels):
    s = data_settings(
        tiny_root,
        tmp_path,
        "data.tokenizer.kind=symbols",
        f"data.tokenizer.layout={layout}",
        f"data.tokenizer.decimate={decimate}",
        "data.tokenizer.max_tokens=4096",
        "data.channels=[Fp1, Fp2, Fz, Cz]",
    )
    data = pipeline.build(s)
    steps = 256 // decimate
    assert data.tokens.shape == (ROWS, 4 * steps)
    assert data.layout.channel[:3].tolist() == first_channels
    assert data.meta["coverage"] == 1.0
    # Quantile bins on z-scored signal: every symbol is used.
    assert set(np.unique(data.tokens)) == set(range(8))


def test_symbols_over_budget_is_an_error_unless_truncation_is_asked(tiny_root, tmp_path, caplog):
    base = ["data.tokenizer.kind=symbols", "data.tokenizer.max_tokens=1000"]
    with pytest.raises(
        ConfigError, match=r"needs 8192 tokens \(32 channels x 256 steps\).*max_tokens=1000"
    ):
        pipeline.build(data_settings(tiny_root, tmp_path, *base))
    with caplog.at_level(logging.WARNING):
        data = pipeline.build(
            data_settings(tiny_root, tmp_path, *base, "data.tokenizer.truncate=true")
        )
    assert data.tokens.shape[1] == 1000
    assert data.meta["coverage"] == pytest.approx(1000 / 8192)
    assert "12.2 % of each window's signal kept" in caplog.text


def test_quantization_and_normalization_fitted_on_train_only(tiny_root, tmp_path):
    """Corrupting val/test trials must not change edges or training tokens."""
    settings = data_settings(tiny_root, tmp_path / "a", "data.normalize=subject")
    clean = pipeline.build(settings)
    held_out = [k for part in ("val", "test") for k in clean.split[part]]
    other = tmp_path / "corrupted"
    other.mkdir()
    for subject in deap.find_subjects(tiny_root):
        rec = deap.read_subject(deap.subject_file(tiny_root, subject))
        for s, t in held_out:
            if s == subject:
                rec.data[t] *= 50.0  # wildly different amplitude in held-out trials
        write_subject(other / f"s{subject:02d}.dat", rec.data, rec.labels)
    changed = pipeline.build(data_settings(other, tmp_path / "b", "data.normalize=subject"))
    assert changed.split == clean.split
    np.testing.assert_array_equal(changed.preprocessor.edges, clean.preprocessor.edges)
    train = clean.indices("train")
    np.testing.assert_array_equal(changed.tokens[train], clean.tokens[train])
    test = clean.indices("test")
    assert not np.array_equal(changed.tokens[test], clean.tokens[test])


@pytest.mark.parametrize("protocol", ["trial", "cross_trial", "loso", "kfold"])
def test_every_protocol_is_trial_disjoint(tiny_root, tmp_path, protocol):
    data = pipeline.build(
        data_settings(tiny_root, tmp_path, f"data.split.protocol={protocol}", "data.split.fold=1")
    )
    split = json.loads((data.path / "splits.json").read_text())
    assert set(split) == set(PARTS)
    check_disjoint({p: [tuple(k) for k in split[p]] for p in PARTS})
    parts_of = {}
    for (s, t, _), p in zip(data.rows.tolist(), data.part.tolist(), strict=True):
        parts_of.setdefault((s, t), set()).add(p)
    assert all(len(p) == 1 for p in parts_of.values()), "a trial's windows span several parts"
    assert all(len(split[p]) > 0 for p in PARTS)
    trial_sets = {p: {tuple(k) for k in split[p]} for p in PARTS}
    if protocol == "loso":
        assert {s for s, _ in trial_sets["test"]} == {2}  # fold 1 of subjects [1, 2, 3]
        assert all(s != 2 for s, _ in trial_sets["train"] | trial_sets["val"])
    if protocol == "cross_trial":  # the same videos held out for everyone
        videos = {p: {t for _, t in trial_sets[p]} for p in PARTS}
        assert not (videos["train"] & videos["test"]) and not (videos["train"] & videos["val"])
        assert len(trial_sets["test"]) == 3 * len(videos["test"])


@pytest.mark.parametrize("protocol", ["kfold", "cross_trial"])
def test_folds_cover_every_trial_once(tiny_root, tmp_path, protocol):
    tested = []
    for fold in range(3):
        s = data_settings(
            tiny_root,
            tmp_path,
            f"data.split.protocol={protocol}",
            "data.split.num_folds=3",
            f"data.split.fold={fold}",
        )
        split = pipeline.build(s, progress=False).split
        assert not set(split["test"]) & (set(split["train"]) | set(split["val"]))
        tested += split["test"]
    assert sorted(tested) == [(s, t) for s in (1, 2, 3) for t in range(12)]


def test_segment_split_leaks_and_says_so(tiny_root, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        data = pipeline.build(data_settings(tiny_root, tmp_path, "data.split.protocol=segment"))
    assert "leak" in caplog.text
    assert len(data.split["train"][0]) == 3  # (subject, trial, window)
    with pytest.raises(DataError, match="in both"):
        check_disjoint(data.split)
    assert "LEAKY" in data.summary()


def test_split_errors(tiny_root, tmp_path):
    with pytest.raises(ConfigError, match="fold=5 but only 3 subjects"):
        pipeline.build(
            data_settings(tiny_root, tmp_path, "data.split.protocol=loso", "data.split.fold=5")
        )
    with pytest.raises(ConfigError, match="leave data for training"):
        data_settings(
            tiny_root, tmp_path, "data.split.val_fraction=0.5", "data.split.test_fraction=0.5"
        )


def test_data_subjects_are_found_once_each_or_refused(tiny_root, tmp_path):
    _, refs = pipeline.find_recordings(data_settings(tiny_root, tmp_path, "data.subjects=[3,1]"))
    assert [(r.subject, r.path.name) for r in refs] == [(1, "s01.dat"), (3, "s03.dat")]
    with pytest.raises(DataError, match=r"subject list has duplicates: \[1, 1\]"):
        pipeline.find_recordings(data_settings(tiny_root, tmp_path, "data.subjects=[1,1]"))
    with pytest.raises(DataError, match=r"unknown subject id\(s\) \[9\]: .* subjects \[1, 2, 3\]"):
        pipeline.find_recordings(data_settings(tiny_root, tmp_path, "data.subjects=[1,9]"))


def test_cache_hit_miss_and_invalidation(tiny_root, tmp_path, monkeypatch):
    root = tmp_path / "deap"
    shutil.copytree(tiny_root, root)
    first = pipeline.build(data_settings(root, tmp_path / "cache"))
    calls = []
    real = stages.build_into
    monkeypatch.setattr(stages, "build_into", lambda *a, **k: (calls.append(1), real(*a, **k)))

    again = pipeline.build(data_settings(root, tmp_path / "cache"))
    assert again.path == first.path and calls == []  # hit: nothing rebuilt

    changed = pipeline.build(data_settings(root, tmp_path / "cache", "data.quantize.num_bins=4"))
    assert changed.path != first.path and calls == [1]  # a setting changed

    f = root / "s02.dat"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    touched = pipeline.build(data_settings(root, tmp_path / "cache"))
    assert touched.path not in (first.path, changed.path) and calls == [1, 1]  # a file changed
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")) == []


def test_a_failed_build_leaves_no_partial_cache(tiny_root, tmp_path):
    root = tmp_path / "deap"
    shutil.copytree(tiny_root, root)
    (root / "s03.dat").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DataError, match=r"s03\.dat"):
        pipeline.build(data_settings(root, tmp_path / "cache"))
    assert list((tmp_path / "cache").glob("*")) == []  # nor the folder it made for them


def test_builds_are_deterministic(tiny_root, tmp_path):
    a = pipeline.build(data_settings(tiny_root, tmp_path / "a"), progress=False)
    b = pipeline.build(data_settings(tiny_root, tmp_path / "b"), progress=False)
    assert a.path.name == b.path.name
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.part, b.part)
    c = pipeline.build(
        data_settings(tiny_root, tmp_path / "c", "data.split.seed=1"), progress=False
    )
    assert c.split != a.split


def test_labels_follow_the_threshold_convention(tiny_root, tmp_path):
    gt = pipeline.build(data_settings(tiny_root, tmp_path))
    ge = pipeline.build(data_settings(tiny_root, tmp_path, "data.labels.high_if='>='"))
    ratings = np.asarray(gt.ratings)[:, :2]
    np.testing.assert_array_equal(gt.labels, (ratings > 5).astype(np.int8))
    np.testing.assert_array_equal(ge.labels, (ratings >= 5).astype(np.int8))
    three = pipeline.build(
        data_settings(
            tiny_root,
            tmp_path,
            "data.labels.num_classes=3",
            "data.labels.targets=[liking]",
            "data.labels.cuts=[4,6]",
        )
    )
    liking = np.asarray(three.ratings)[:, 3]
    np.testing.assert_array_equal(three.labels[:, 0], (liking > 4).astype(int) + (liking > 6))
    assert three.class_names == ["low", "mid", "high"]


@pytest.mark.parametrize("baseline", ["drop", "subtract", "keep"])
def test_baseline_handling(tiny_root, tmp_path, monkeypatch, baseline):
    prepared = []  # each recording's trials as they are cut into windows, in reading order
    cut = Preprocessor.windows

    def windows(self: Preprocessor, trials: Trials) -> np.ndarray:
        prepared.append(np.array(trials))
        return cut(self, trials)

    monkeypatch.setattr(Preprocessor, "windows", windows)
    data = pipeline.build(data_settings(tiny_root, tmp_path, f"data.baseline={baseline}"))
    per_trial = 6 if baseline == "keep" else 5  # 13 s with, 10 s without the 3 s baseline
    assert len(data.rows) == 3 * 12 * per_trial
    # Against the files as plain pickle reads them: 32 EEG channels first, a 3 s baseline.
    fs, lead = 128, 3 * 128
    assert len(prepared) == TINY.subjects
    for subject, trials in enumerate(prepared, start=1):
        with (tiny_root / f"s{subject:02d}.dat").open("rb") as f:
            raw = pickle.load(f, encoding="latin1")["data"][:, :32]
        base, stimulus = raw[..., :lead], raw[..., lead:]
        if baseline == "keep":
            expected = raw
        elif baseline == "drop":
            expected = stimulus
        else:  # DEAP's baseline removal: the baseline's mean second, off every stimulus second
            mean_second = base.reshape(*base.shape[:2], 3, fs).mean(axis=2)
            expected = stimulus - np.tile(mean_second, 10)
            # So each channel's mean drops by its baseline mean; what comes off is no rounding
            # error (a mean second about half as large as the signal), so drop differs.
            np.testing.assert_allclose(
                trials.mean(-1), stimulus.mean(-1) - base.mean(-1), rtol=1e-4, atol=1e-4
            )
            assert np.abs(mean_second).mean() > 0.3 * np.abs(stimulus).mean()
        np.testing.assert_allclose(trials, expected, rtol=1e-5, atol=1e-4)


def test_dataset_and_collate(tiny_root, tmp_path):
    data = pipeline.build(data_settings(tiny_root, tmp_path))
    train = TokenDataset(data, "train")
    assert len(train) == len(data.indices("train"))
    item = train[0]
    assert item["input_ids"].dtype.is_floating_point is False and item["labels"].shape == (2,)
    collate = Collator(pad_id=data.pad_id)
    short = dict(item, input_ids=item["input_ids"][:10])
    batch = collate([item, short])
    assert batch["input_ids"].shape == (2, 256)
    assert (
        batch["attention_mask"][1].sum() == 10 and (batch["input_ids"][1, 10:] == data.pad_id).all()
    )
    assert batch["labels"].shape == (2, 2) and batch["subject"].tolist() == [1, 1]


def test_a_stale_cache_folder_is_rebuilt_in_place(tiny_root, tmp_path, caplog):
    settings = data_settings(tiny_root, tmp_path)
    first = pipeline.build(settings, progress=False)
    (first.path / "meta.json").unlink()  # e.g. deleted by hand, or a copy cut short
    (first.path / "left-over.txt").write_text("from the stale folder")
    with caplog.at_level(logging.WARNING):
        again = pipeline.build(settings, progress=False)
    assert f"replacing the incomplete dataset cache {first.path}" in caplog.text
    assert again.path == first.path and (again.path / "meta.json").exists()
    assert not (again.path / "left-over.txt").exists()  # replaced, not merged into
    np.testing.assert_array_equal(np.asarray(again.tokens), np.asarray(first.tokens))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing left over
    assert (again.path.stat().st_mode & 0o777) == 0o777 & ~fileio.umask()  # group can read


def test_an_interrupted_builds_temporary_folder_is_removed_later(tiny_root, tmp_path, monkeypatch):
    abandoned = tmp_path / ".deap-0123456789abcdef0123-x1"
    abandoned.mkdir()
    (abandoned / "tokens.npy").write_bytes(b"half")
    recent = tmp_path / ".deap-0123456789abcdef0123-x2"  # maybe another process's live build
    recent.mkdir()
    swapped_out = tmp_path / ".old-deap-0123456789abcdef0123"  # a swap killed halfway
    swapped_out.mkdir()
    old = time.time() - pipeline.ABANDONED_S - 60
    for path in (abandoned / "tokens.npy", abandoned, swapped_out):  # untouched for that long
        os.utime(path, (old, old))
    written_into = []
    real = stages.build_into
    monkeypatch.setattr(
        stages,
        "build_into",
        lambda folder, *a, **k: (written_into.append(folder), real(folder, *a, **k)),
    )
    pipeline.build(data_settings(tiny_root, tmp_path), progress=False)
    assert not abandoned.exists() and not swapped_out.exists() and recent.exists()
    # A killed build leaves its temporary folder under a name the clean-up looks for.
    (folder,) = written_into
    assert folder.parent == tmp_path and not folder.exists()
    assert any(fnmatch.fnmatch(folder.name, p) for p in pipeline.LEFTOVER_PATTERNS)


def test_a_cache_another_process_published_first_is_kept(tiny_root, tmp_path, monkeypatch, caplog):
    settings = data_settings(tiny_root, tmp_path)
    real = stages.build_into
    first = pipeline.build(settings, progress=False)
    tokens = np.array(first.tokens)
    target = first.path
    shutil.rmtree(target)

    def another_process_wins(folder, *args, **kwargs):
        real(folder, *args, **kwargs)
        shutil.copytree(folder, target)  # the other builder's rename lands first
        (target / "theirs.txt").write_text("published by the other builder")

    monkeypatch.setattr(stages, "build_into", another_process_wins)
    with caplog.at_level(logging.WARNING):
        data = pipeline.build(settings, progress=False)
    assert data.path == target and (target / "theirs.txt").exists()  # theirs kept, not swapped
    assert "replacing" not in caplog.text
    np.testing.assert_array_equal(np.asarray(data.tokens), tokens)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # ours removed
