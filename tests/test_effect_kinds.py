"""`launch/synthesize.py --effect-kind coupling|temporal` in the DREAMER, SEED, SEED-IV, AMIGOS
and EDF layouts, read back through the project's readers: at the planted sites each format's
montage keeps, the coupled pairs' phase locking follows their target in the coupling files and
the bursting neighbourhoods' burstiness in the temporal files, while neither follows it in the
files of the other kind (the same background draws, no such effect)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter, hilbert, sosfiltfilt

from eeg_emotion.cli import synthesize as cli
from eeg_emotion.data.channels import EEG_CHANNELS
from eeg_emotion.data.readers import Categories, read_all
from eeg_emotion.data.synthetic import SyntheticSpec, burst_design, coupling_design
from eeg_emotion.data.synthetic_formats import SEED_FELT, SEED_IV_FELT

pytestmark = pytest.mark.slow

# Seed 2 leaves the 14-channel formats an alpha and a gamma pair and 4 + 2 bursting channels
# (most seeds leave them only theta pairs, which few trials show weakly). --effect 4: a clear
# effect in ~50 trials of 8 s, which keeps the test short.
SEED = 2
DESIGN = SyntheticSpec(seed=SEED)
SIZES = {  # about 50 trials of 8 s in each format
    "dreamer": ["--subjects", "3", "--trials", "20", "--baseline-seconds", "1"],
    "seed": ["--subjects", "1", "--sessions", "3", "--trials", "15"],
    "seed_iv": ["--subjects", "1", "--sessions", "2", "--trials", "24"],
    "amigos": ["--subjects", "3", "--long-seconds", "8", "8"],
    "edf": ["--subjects", "1", "--trials", "80"],
}
# Where the generator put each class on the valence, arousal plane (1..9).
CLASS_RATINGS = {"seed": SEED_FELT, "seed_iv": SEED_IV_FELT}
BANDS = {"theta": (4, 8), "alpha": (8, 14), "beta": (14, 31), "gamma": (31, 45)}
# What each format's montage keeps of the design: coupled pairs, channels per bursting site.
KEPT = {"dreamer": (2, [4, 2]), "amigos": (2, [4, 2])}


class Files:
    """One format's files of one effect kind, as the reader gives them: the last 7 s of every
    trial (past the 1 s onset ramp), DEAP's channels found by name, and whether each trial's
    valence and arousal are high (above the scale's middle; SEED's classes placed on the plane
    as the generator places them)."""

    def __init__(self, fmt: str, kind: str, out: Path) -> None:
        argv = ["--format", fmt, "--out", str(out), *SIZES[fmt], "--seconds", "8", "8"]
        argv += ["--effect", "4", "--seed", str(SEED), "--effect-kind", kind, "--workers", "1"]
        assert cli.main(argv) == 0
        trials, high, recording = [], [], []
        for i, rec in enumerate(read_all("mne" if fmt == "edf" else fmt, out)):
            self.rate = rec.sampling_rate
            names = [c.upper() for c in rec.channels]
            self.where = {
                c: names.index(name.upper())
                for c, name in enumerate(EEG_CHANNELS)
                if name.upper() in names
            }
            trials += [x[:, -int(7 * rec.sampling_rate) :] for x in rec.trials]
            if isinstance(rec.targets, Categories):
                where = CLASS_RATINGS[fmt]
                ratings = np.array([where[rec.targets.names[v]] for v in rec.targets.values])
                middle = 5.0
            else:
                ratings = np.column_stack([rec.targets.column(n) for n in ("valence", "arousal")])
                middle = (rec.targets.low + rec.targets.high) / 2
            high.append(ratings > middle)
            recording += [i] * len(rec.trials)
        self.x = np.stack(trials)
        self.high = np.concatenate(high)
        self.recording = np.array(recording)

    def band(self, channels: list[int], band: str) -> np.ndarray:
        """The analytic signal of `band` at DEAP channels `channels` (trials, channels, time)."""
        sos = butter(4, BANDS[band], btype="band", fs=self.rate, output="sos")
        picked = self.x[:, [self.where[c] for c in channels]]
        return hilbert(sosfiltfilt(sos, picked, axis=-1), axis=-1)

    def contrast(self, statistic: np.ndarray, target: int) -> float:
        """Mean of `statistic` over high-rated trials minus over the others, in standard errors,
        each recording's mean removed first (participants differ in level, not in effect)."""
        centred = statistic.copy()
        for r in np.unique(self.recording):
            centred[self.recording == r] -= centred[self.recording == r].mean()
        high = self.high[:, target]
        a, b = centred[high], centred[~high]
        return float((a.mean() - b.mean()) / np.sqrt(a.var() / a.size + b.var() / b.size))

    def locking(self) -> list[float]:
        """Per coupled pair the montage keeps: how its phase locking value follows its target."""
        out = []
        for site in coupling_design(DESIGN):
            if all(c in self.where for c in site.channels):
                phase = np.angle(self.band(list(site.channels), site.band))
                plv = np.abs(np.exp(1j * (phase[:, 0] - phase[:, 1])).mean(-1))
                out.append(self.contrast(plv, site.target))
        return out

    def burstiness(self) -> list[tuple[int, float]]:
        """Per bursting site: how many of its channels the montage keeps, and how the envelope's
        coefficient of variation there follows its target."""
        out = []
        for site in burst_design(DESIGN):
            kept = [c for c in site.channels if c in self.where]
            envelope = np.abs(self.band(kept, site.band))
            variation = (envelope.std(-1) / envelope.mean(-1)).mean(1)
            out.append((len(kept), self.contrast(variation, site.target)))
        return out


@pytest.mark.parametrize("fmt", list(SIZES))
def test_coupling_and_temporal_effects_reach_the_format(fmt, tmp_path):
    coupled, bursty = Files(fmt, "coupling", tmp_path / "c"), Files(fmt, "temporal", tmp_path / "t")
    pairs, sites = KEPT.get(fmt, (4, [5, 5]))
    locking = coupled.locking()
    assert len(locking) == pairs and np.mean(locking) > 2, locking
    unlocked = bursty.locking()
    assert abs(np.mean(unlocked)) < 1.5, unlocked
    burst = bursty.burstiness()
    assert [n for n, _ in burst] == sites and min(c for _, c in burst) > 2, burst
    even = coupled.burstiness()
    assert max(abs(c) for _, c in even) < 2, even
