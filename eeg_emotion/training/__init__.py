"""The training recipe (`trainer`) and what keeps a run safe: the Accelerator (`distributed`),
verified checkpoints, one experiment per run folder, stop requests, trackers and throughput.

Names are imported on first use (so `import eeg_emotion.training.run_folder` does not load
accelerate); the list is in `__init__.pyi`.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
