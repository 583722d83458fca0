from .compare import compare_folders, load_trials, paired, write_comparison
from .cv import aggregate, write_cv_results, write_group
from .inference import evaluate_run, load_run, predict_files
from .metrics import split_metrics
from .report import write_report
from .scoring import Majorities, Predictions, score, write_run
from .tables import SplitResults, text_table

__all__ = [
    "Majorities",
    "Predictions",
    "SplitResults",
    "aggregate",
    "compare_folders",
    "evaluate_run",
    "load_run",
    "load_trials",
    "paired",
    "predict_files",
    "score",
    "split_metrics",
    "text_table",
    "write_comparison",
    "write_cv_results",
    "write_group",
    "write_report",
    "write_run",
]
