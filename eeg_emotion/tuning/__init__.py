"""Hyperparameter search chosen on val only, with Optuna: the search space file (`space`), the
study folder shared by every worker (`study`), one trial as an ordinary run folder (`trial`)
and the study's report (`report`). The command is `eeg-emotion tune` (eeg_emotion/cli/tune.py).
"""
