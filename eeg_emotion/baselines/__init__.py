"""Baselines on exactly the LLM runs' data: same windows, labels, splits and reports.

`band_power_lr`: differential entropy per band and channel (the band_power tokenizer's continuous
features, averaged over a window's sub-windows) + standardization + logistic regression per
target, with the inverse regularization strength chosen on val. `eegnet`: EEGNet-8,2 on the
normalized signal windows, the epoch with the best val score kept. `connectivity`: per window
and band, every channel pair's zero-lag correlation and imaginary coherence and every channel's
log-envelope spread, into an L1 logistic regression per target whose strength is chosen by
trial-grouped cross-validation within the training part.
`runner.run` fits the configured one into a run folder laid out like a training run's.

All read the DEAP files again (`recordings`: the token cache holds quantized codes, not
signals), normalize them as the pipeline does (statistics from training trials only where they
are shared) and keep the pipeline's rows, labels and split, so every number lines up with an
LLM run's.
"""

import lazy_loader

# Names are imported on first use; see __init__.pyi.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
