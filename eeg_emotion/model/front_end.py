"""Features of a whole patch across its channels, for patch inputs (`model.front_end`).

A per-token patch encoder sees one channel's patch at a time: it can read that channel's power
spectrum and waveform, but not how two channels relate, and only the patch's total power, not how
it is spread in time. `FilterBankFrontEnd` computes, for each patch of a window, told no site,
pair or band:

- a learned band-pass filter bank shared by every channel (`bands` FIR filters of
  `filter_length` taps, started as log-spaced windowed-sinc band-passes);
- per band, the analytic signal (Hilbert transform through the FFT) and `spatial_filters`
  learned complex spatial filters over all channels. The mean power of a filtered complex
  signal is w^H S w, S the band's complex cross-spectral matrix: its real part is the zero-lag
  covariance, its imaginary part the quadrature (phase-lagged) coupling of every channel pair;
- per channel and band, the log power in `sub_windows` short sub-windows of the patch, with its
  mean and spread over them: bursts raise the spread where even activity of the same energy
  does not.

The per-patch features go to every token of the patch, each channel's features to its own token,
so the layout and the token count stay as they are. With `to_head`, their averages over the
window also reach the head directly (`summary`), as filter-bank spatial-filter pipelines feed a
linear classifier.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from eeg_emotion.errors import ConfigError

if TYPE_CHECKING:
    from eeg_emotion.model.embedding import InputSpec
    from eeg_emotion.model_settings import FrontEndSettings

EPS = 1e-6  # keeps the log of a padded (all-zero) patch finite, and its gradient


def summary_width(spec: InputSpec, settings: FrontEndSettings) -> int:
    """How many features `FilterBankFrontEnd` hands the head (`to_head`), 0 for none."""
    if settings.kind != "filterbank" or not settings.to_head:
        return 0
    channels = len(dict.fromkeys(spec.channel))
    return settings.bands * settings.spatial_filters + channels * 2 * settings.bands


def band_pass_bank(bands: int, taps: int, rate: float) -> torch.Tensor:
    """(bands, taps) windowed-sinc band-passes with log-spaced edges from the lowest frequency
    `taps` resolve (rate / taps) to 0.45 x rate, the first one a low-pass: a generic start for
    filters that then learn."""
    edges = torch.logspace(math.log10(rate / taps), math.log10(0.45 * rate), bands + 1)
    edges[0] = 0.0
    t = (torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2) / rate
    window = torch.hamming_window(taps, periodic=False, dtype=torch.float64)
    rows = []
    for low, high in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        kernel = 2 * high * torch.sinc(2 * high * t) - 2 * low * torch.sinc(2 * low * t)
        rows.append(kernel / rate * window)
    return torch.stack(rows).float()


def analytic(x: torch.Tensor) -> torch.Tensor:
    """The analytic signal of real `x` along its last axis (scipy.signal.hilbert's)."""
    n = x.shape[-1]
    gain = torch.zeros(n, dtype=x.dtype, device=x.device)
    gain[0] = 1.0
    gain[1 : (n + 1) // 2] = 2.0
    if n % 2 == 0:
        gain[n // 2] = 1.0
    return torch.fft.ifft(torch.fft.fft(x, dim=-1) * gain, dim=-1)


class FilterBankFrontEnd(nn.Module):
    """(batch, tokens, patch samples) -> (batch, tokens, hidden), added to the patch tokens."""

    # Layout buffers, set in __init__.
    slot: torch.Tensor
    patch_of: torch.Tensor

    def __init__(
        self, spec: InputSpec, settings: FrontEndSettings, hidden: int, scale: float
    ) -> None:
        super().__init__()
        from eeg_emotion.data.signal import parse_duration

        if spec.patch <= 0 or spec.sampling_rate <= 0:
            raise ConfigError(
                "model.front_end.kind=filterbank needs patch inputs with their sampling rate "
                "(data.tokenizer.kind=patch)"
            )
        samples = spec.patch
        taps = parse_duration(
            settings.filter_length, spec.sampling_rate, "model.front_end.filter_length"
        )
        if taps > samples:
            raise ConfigError(
                f"model.front_end.filter_length={settings.filter_length!r} ({taps} samples) is "
                f"longer than a patch ({samples} samples)"
            )
        if settings.sub_windows > samples:
            raise ConfigError(
                f"model.front_end.sub_windows={settings.sub_windows} is more than a patch's "
                f"{samples} samples"
            )
        bands, spatial = settings.bands, settings.spatial_filters
        self.sub_windows = settings.sub_windows
        # Each position's patch and its channel's slot among the layout's electrodes (in the
        # order they first appear), so any layout (time- or channel-major) fills one grid.
        electrodes = list(dict.fromkeys(spec.channel))
        slot = torch.tensor([electrodes.index(c) for c in spec.channel], dtype=torch.long)
        self.register_buffer("slot", slot, persistent=False)
        self.register_buffer(
            "patch_of", torch.tensor(spec.time, dtype=torch.long), persistent=False
        )
        self.channels, self.patches = len(electrodes), int(max(spec.time)) + 1
        self.filters = nn.Parameter(band_pass_bank(bands, taps, spec.sampling_rate))
        # Complex spatial filters (real, imaginary parts): (2, bands, spatial, channels).
        self.spatial = nn.Parameter(
            torch.randn(2, bands, spatial, self.channels) / math.sqrt(2 * self.channels)
        )
        per_patch, per_channel = bands * spatial, 2 * bands
        # Log powers sit at arbitrary offsets (a band's share of a normalized signal): the norms
        # standardize them, the projections start at the embedding's scale.
        self.patch_norm = nn.LayerNorm(per_patch)
        self.patch_proj = nn.Linear(per_patch, hidden)
        self.channel_norm = nn.LayerNorm(per_channel)
        self.channel_proj = nn.Linear(per_channel, hidden)
        for proj, width in ((self.patch_proj, per_patch), (self.channel_proj, per_channel)):
            nn.init.normal_(proj.weight, std=scale / math.sqrt(width))
            nn.init.zeros_(proj.bias)
        width = summary_width(spec, settings)
        self.summary_norm = nn.LayerNorm(width) if width else None

    def features(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per patch (batch, patches, bands x spatial), per token (batch, tokens, 2 x bands:
        the channel's mean log power per band over the sub-windows, then its spread), and
        whether each token holds signal (padding is all zeros). float32."""
        x = values.float()
        batch, n, samples = x.shape
        slot, patch = self.slot[:n], self.patch_of[:n]
        grid = x.new_zeros(batch, self.patches, self.channels, samples)
        grid[:, patch, slot] = x
        real = x.abs().amax(-1) > 0  # (batch, n)
        filters = self.filters.float()
        taps = filters.shape[-1]
        # Reflected edges: a zero-padded patch edge would read as a drop in power.
        flat = F.pad(grid.reshape(-1, 1, samples), ((taps - 1) // 2, taps // 2), mode="reflect")
        banded = F.conv1d(flat, filters[:, None, :])  # (batch x patches x channels, bands, S)
        z = analytic(banded).reshape(batch, self.patches, self.channels, -1, samples)
        w = torch.complex(self.spatial[0].float(), self.spatial[1].float())  # (bands, K, C)
        mixed = torch.einsum("bpcfs,fkc->bpfks", z, w)
        patch_power = torch.log(mixed.abs().square().mean(-1) + EPS).flatten(2)
        # Each channel's band power in `sub_windows` equal parts of the patch (a remainder of
        # fewer samples than the parts is left out).
        power = z.abs().square()
        part = samples // self.sub_windows
        power = power[..., : part * self.sub_windows].unflatten(-1, (self.sub_windows, part))
        logs = torch.log(power.mean(-1) + EPS)  # (batch, patches, channels, bands, sub_windows)
        mean = logs.mean(-1)
        # The eps keeps the gradient finite where a padded patch is flat: sqrt has no slope at 0.
        spread = (logs.var(-1, unbiased=False) + EPS).sqrt()
        per_channel = torch.cat([mean, spread], -1)[:, patch, slot]  # (batch, n, 2 x bands)
        return patch_power, per_channel, real

    def forward(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(batch, tokens, patch) -> (batch, tokens, hidden) in the projections' dtype, zero at
        padding and in patches with no signal; and with `to_head`, the window's summary
        (batch, `summary_width`) in fp32, else None."""
        with torch.autocast(values.device.type, enabled=False):
            patch_power, per_channel, real = self.features(values)
            patch = self.patch_of[: values.shape[1]]
            dtype = self.patch_proj.weight.dtype
            # A patch holds signal if any of its tokens does (partial patches keep what is there).
            count = real.new_zeros(values.shape[0], self.patches, dtype=dtype)
            has_signal = count.index_add(1, patch, real.to(dtype)) > 0
            summary = self.summary(patch_power, per_channel, real, has_signal)
            whole = self.patch_proj(self.patch_norm(patch_power.to(dtype)))
            whole = whole * has_signal[..., None].to(dtype)
            own = self.channel_proj(self.channel_norm(per_channel.to(dtype)))
            return whole[:, patch] + own * real[..., None].to(dtype), summary

    def summary(
        self,
        patch_power: torch.Tensor,
        per_channel: torch.Tensor,
        real: torch.Tensor,
        has_signal: torch.Tensor,
    ) -> torch.Tensor | None:
        """The per-patch features averaged over the patches that hold signal, and each
        electrode's features over its tokens that do, side by side and normalized (fp32)."""
        if self.summary_norm is None:
            return None
        n = per_channel.shape[1]
        mask = real.float()  # (batch, tokens)
        patches = has_signal.float()  # (batch, patches)
        whole = (patch_power * patches[..., None]).sum(1) / patches.sum(1, keepdim=True).clamp(
            min=1
        )
        weights = mask[..., None] * F.one_hot(self.slot[:n], self.channels).float()[None]
        own = torch.einsum("bnf,bnc->bcf", per_channel, weights)
        own = own / weights.sum(1)[..., None].clamp(min=1)
        return self.summary_norm(torch.cat([whole, own.flatten(1)], -1))
