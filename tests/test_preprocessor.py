"""The preprocessor: one object holds what was fitted on training data, saved with the dataset
and the best model, and turns any recording into exactly the dataset's tokens."""

from __future__ import annotations

import numpy as np
import pytest

from eeg_emotion.config import DataSettings, load_settings
from eeg_emotion.data import pipeline, signal
from eeg_emotion.data.preprocessor import Preprocessor
from eeg_emotion.data.readers import Recording
from eeg_emotion.errors import ConfigError, DataError
from tests.helpers.paths import data_settings


def read(settings: DataSettings, subject: int) -> Recording:
    """A subject's recording as the pipeline reads it: the source's reader with its options."""
    reader, refs = pipeline.find_recordings(settings)
    (ref,) = [r for r in refs if r.subject == subject]
    return reader.read(ref)


@pytest.mark.parametrize(
    "overrides",
    [
        [],  # band_power, trial normalization (the default)
        ["data.normalize=subject"],
        [
            "data.normalize=none",
            "data.tokenizer.kind=symbols",
            "data.tokenizer.decimate=8",
            "data.tokenizer.max_tokens=1024",
        ],
        ["data.normalize=subject", "data.split.protocol=loso", "data.split.fold=1"],
    ],
    ids=["band_power-trial", "band_power-subject", "symbols-none", "loso-subject"],
)
def test_saved_preprocessor_gives_the_datasets_tokens(tiny_root, tmp_path, overrides):
    data = pipeline.build(data_settings(tiny_root, tmp_path / "cache", *overrides), progress=False)
    data.preprocessor.save(tmp_path)
    pre = Preprocessor.load(tmp_path)
    assert pre.settings == data.settings
    np.testing.assert_array_equal(pre.edges, data.preprocessor.edges)
    for subject in data.subjects:
        x = pre.prepare(read(pre.settings, subject))
        tokens, lengths = pre.transform(x, subject)
        rows = np.flatnonzero(np.asarray(data.rows)[:, 0] == subject)
        np.testing.assert_array_equal(tokens, np.asarray(data.tokens)[rows][:, : tokens.shape[1]])
        np.testing.assert_array_equal(lengths, np.asarray(data.lengths)[rows])


def test_subject_statistics_are_those_of_training_trials_only(tiny_root, tmp_path):
    data = pipeline.build(
        data_settings(tiny_root, tmp_path, "data.normalize=subject", "data.split.protocol=loso"),
        progress=False,
    )
    pre = data.preprocessor
    train = {(s, t) for s, t in data.split["train"]}
    held_out = sorted({s for s, _ in data.split["test"]})
    assert held_out and not set(held_out) & set(pre.per_subject)  # no statistics of test subjects
    pooled = np.zeros((pre.num_channels, 3))
    for subject in pre.per_subject:
        x = pre.prepare(read(pre.settings, subject))
        moments = signal.channel_moments(x)
        mine = moments[[t for t in range(len(x)) if (subject, t) in train]].sum(0)
        pooled += mine
        np.testing.assert_allclose(
            pre.per_subject[subject], np.stack(signal.moments_to_stats(mine)), rtol=1e-6
        )
    np.testing.assert_allclose(pre.pooled, np.stack(signal.moments_to_stats(pooled)), rtol=1e-6)
    # A held-out subject is normalized with the pooled training statistics, never its own.
    x = pre.prepare(read(pre.settings, held_out[0]))
    mean, std = pre.stats(signal.channel_moments(x), held_out[0])
    np.testing.assert_array_equal(mean[0], pre.pooled[0])
    np.testing.assert_array_equal(std[-1], pre.pooled[1])


def test_a_damaged_preprocessor_is_a_clear_error_and_never_unpickled(tiny_root, tmp_path):
    data = pipeline.build(data_settings(tiny_root, tmp_path / "cache"), progress=False)
    data.preprocessor.save(tmp_path)
    np.savez(tmp_path / "preprocessor.npz", pooled=np.array([object()], dtype=object))
    with pytest.raises(DataError, match="preprocessor"):
        Preprocessor.load(tmp_path)
    (tmp_path / "preprocessor.json").write_text("{not json")
    with pytest.raises(DataError, match=r"preprocessor\.json"):
        Preprocessor.load(tmp_path)


def test_continuous_values_are_standardized_on_training_rows_and_saved(tiny_root, tmp_path):
    data = pipeline.build(
        data_settings(tiny_root, tmp_path / "cache", "data.tokenizer.continuous=true"),
        progress=False,
    )
    values, train = np.asarray(data.values), data.indices("train")
    assert values.shape == np.asarray(data.tokens).shape and values.dtype == np.float32
    np.testing.assert_allclose(values[train].mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(values[train].std(0), 1, atol=1e-3)
    assert abs(values[data.indices("test")].mean()) > 1e-4  # test rows never fitted
    data.preprocessor.save(tmp_path)
    pre = Preprocessor.load(tmp_path)
    for subject in data.subjects:
        x = pre.prepare(read(pre.settings, subject))
        rows = np.flatnonzero(np.asarray(data.rows)[:, 0] == subject)
        np.testing.assert_array_equal(pre.values(x, subject), values[rows])


def test_continuous_values_need_band_power(tmp_path):
    with pytest.raises(ConfigError, match="continuous"):
        load_settings(None, ["data.tokenizer.kind=symbols", "data.tokenizer.continuous=true"])


def test_bins_fitted_on_every_window_exist_only_under_a_leaky_name(tiny_root, tmp_path):
    honest = pipeline.build(data_settings(tiny_root, tmp_path / "a"), progress=False)
    leaky = pipeline.build(
        data_settings(tiny_root, tmp_path / "b", "data.quantize.fit_on=every_window_leaky"),
        progress=False,
    )
    assert not np.array_equal(honest.preprocessor.edges, leaky.preprocessor.edges)
    assert "LEAKY: bin edges fitted on every window" in leaky.summary()
    assert "LEAKY" not in honest.summary()
