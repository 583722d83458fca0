"""From predictions to the numbers every output shows.

`scoring` turns a split's predictions into its scores and writes a run's results, `metrics` holds
the metric definitions, `tables` renders every table, `cv` aggregates the folds of a CV group,
`report` writes report.md, `plots` the PNGs, `inference` re-evaluates and predicts with a run.
"""
