from .band_power_lr import band_power_features
from .connectivity import connectivity_features
from .eegnet import EEGNet
from .runner import run

__all__ = ["EEGNet", "band_power_features", "connectivity_features", "run"]
