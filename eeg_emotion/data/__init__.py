"""The data side: EEG files -> preprocessed windows -> token sequences -> torch batches.

Readers (`readers/`) check and read each dataset's files; `pipeline.build` turns them into a
cached token dataset whose every statistic is fitted on the training split (`splits`,
`preprocessor`, `tokenize`); `dataset` serves it to torch. Names are imported on first use; the
list is in `__init__.pyi`.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
