"""eeg-emotion: LLM-based EEG emotion classifiers on DEAP."""

from eeg_emotion.errors import ConfigError, DataError, EEGEmotionError

__all__ = ["ConfigError", "DataError", "EEGEmotionError"]
__version__ = "0.1.0"
