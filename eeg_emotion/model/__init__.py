"""The classifier: a Llama-family backbone (4-bit, bf16 or fp32) with LoRA, the EEG input
embedding in front of it and the mean + max pooling head behind it; planning without a GPU.

Names are imported on first use (so `import eeg_emotion.model.plan` does not load peft); the
list is in `__init__.pyi`.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
