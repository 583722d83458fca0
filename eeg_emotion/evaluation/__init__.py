"""From predictions to the numbers every output shows.

`scoring` turns a split's predictions into its scores and writes a run's results, `metrics` holds
the metric definitions, `tables` renders every table, `cv` aggregates the folds of a CV group,
`report` writes report.md, `plots` the PNGs, `inference` re-evaluates and predicts with a run.
"""

import lazy_loader

# Names are imported on first use (matplotlib and torch only where needed); see __init__.pyi.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
