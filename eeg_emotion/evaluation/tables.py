"""Every table of the results, rendered from typed views of the stored results.

results.json holds one dict per split (written by `scoring.score`), cv_results.json one per CV
group (written by `cv.aggregate`). `SplitResults.of` and `CVSummary.of` read those dicts, and
the functions below render them: the plain-text table of test_results.txt (also printed), the
markdown tables of report.md and the cross-validation summary of cv_results.md.

    split = SplitResults.of(results["test"])
    print(text_table(split, "test"))
"""

from __future__ import annotations

from dataclasses import dataclass


def targets_of(split: dict) -> list[str]:
    """The targets of a split's stored results, in the order they were scored: its keys that
    hold one target's metrics (the others hold the level's summaries, its loss and the other
    levels). Read from the results themselves, so a source's own target names (an MNE label
    table's columns) count as well as the built-in ones."""
    return [k for k, v in split.items() if isinstance(v, dict) and "confusion_matrix" in v]


def _ci(stored: dict, key: str) -> tuple[float, float] | None:
    lo_hi = stored.get(key)
    return (lo_hi[0], lo_hi[1]) if lo_hi else None


@dataclass(frozen=True)
class TargetMetrics:
    """One target's metrics at one level (windows or trials). The uncertainty figures and the
    subject-majority baseline are None where they were not computed (results of older runs,
    the pooled test predictions of a CV group)."""

    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    majority_baseline: float
    support: int
    confusion_matrix: list[list[int]]
    majority_class: int | None = None  # None where rows come from several training splits
    subject_majority_baseline: float | None = None
    accuracy_ci95: tuple[float, float] | None = None
    balanced_accuracy_ci95: tuple[float, float] | None = None
    p_value_balanced_accuracy_vs_chance: float | None = None
    p_value_accuracy_vs_majority: float | None = None  # trials only
    trials: int | None = None

    @classmethod
    def of(cls, stored: dict) -> TargetMetrics:
        return cls(
            accuracy=stored["accuracy"],
            balanced_accuracy=stored["balanced_accuracy"],
            macro_f1=stored["macro_f1"],
            majority_baseline=stored["majority_baseline"],
            support=stored["support"],
            confusion_matrix=stored["confusion_matrix"],
            majority_class=stored.get("majority_class"),
            subject_majority_baseline=stored.get("subject_majority_baseline"),
            accuracy_ci95=_ci(stored, "accuracy_ci95"),
            balanced_accuracy_ci95=_ci(stored, "balanced_accuracy_ci95"),
            p_value_balanced_accuracy_vs_chance=stored.get("p_value_balanced_accuracy_vs_chance"),
            p_value_accuracy_vs_majority=stored.get("p_value_accuracy_vs_majority"),
            trials=stored.get("trials"),
        )


@dataclass(frozen=True)
class LevelResults:
    """One level of a split: the metrics of each target, and of all targets right at once."""

    targets: dict[str, TargetMetrics]
    overall_accuracy: float
    overall_majority_baseline: float

    @classmethod
    def of(cls, stored: dict, targets: list[str]) -> LevelResults:
        return cls(
            {t: TargetMetrics.of(stored[t]) for t in targets},
            stored["overall"]["accuracy"],
            stored["overall"]["majority_baseline"],
        )


@dataclass(frozen=True)
class SubjectMetrics:
    """One target's metrics over one subject's test trials."""

    accuracy: float
    balanced_accuracy: float
    majority_baseline: float
    subject_majority_baseline: float | None = None
    trials: int | None = None

    @classmethod
    def of(cls, stored: dict) -> SubjectMetrics:
        return cls(
            stored["accuracy"],
            stored["balanced_accuracy"],
            stored["majority_baseline"],
            stored.get("subject_majority_baseline"),
            stored.get("trials"),
        )


@dataclass(frozen=True)
class SplitResults:
    """A split's results: per window, per trial (None in results of older runs) and per
    subject (subject -> target -> metrics; empty where not computed)."""

    windows: LevelResults
    trials: LevelResults | None
    per_subject: dict[str, dict[str, SubjectMetrics]]

    @property
    def targets(self) -> list[str]:
        return list(self.windows.targets)

    @classmethod
    def of(cls, stored: dict, targets: list[str] | None = None) -> SplitResults:
        """A split's stored results, restricted to `targets` (default: all of them)."""
        targets = targets_of(stored) if targets is None else targets
        trials = stored.get("trial_level")
        return cls(
            LevelResults.of(stored, targets),
            None if trials is None else LevelResults.of(trials, targets),
            {
                subject: {t: SubjectMetrics.of(by_target[t]) for t in targets}
                for subject, by_target in stored.get("per_subject", {}).items()
            },
        )


@dataclass(frozen=True)
class Spread:
    """One metric over the folds of a CV group."""

    mean: float
    sd: float
    per_fold: list[float]


@dataclass(frozen=True)
class FoldsLevel:
    """One level of a CV group's test results: each target's metrics over the folds."""

    targets: dict[str, dict[str, Spread]]  # target -> metric -> spread
    overall_accuracy: Spread

    @property
    def metrics(self) -> list[str]:
        """The metrics every fold has, in their stored order."""
        return list(next(iter(self.targets.values())))

    @classmethod
    def of(cls, stored: dict, targets: list[str]) -> FoldsLevel:
        return cls(
            {t: {m: Spread(**s) for m, s in stored[t].items()} for t in targets},
            Spread(**stored["overall"]["accuracy"]),
        )


@dataclass(frozen=True)
class CVSummary:
    """A CV group's cv_results.json: the folds' test results (mean ± sd) and, where every fold
    saved its predictions, the metrics of all folds' test rows pooled."""

    folds: list[str]
    missing: list[str]
    targets: list[str]
    windows: FoldsLevel
    trials: FoldsLevel | None
    pooled_windows: LevelResults | None
    pooled_trials: LevelResults | None

    @classmethod
    def of(cls, stored: dict) -> CVSummary:
        targets = stored["targets"]
        trials = stored.get("test_trials")
        pooled = stored.get("pooled") or {}
        return cls(
            stored["folds"],
            stored["missing"],
            targets,
            FoldsLevel.of(stored["test"], targets),
            None if trials is None else FoldsLevel.of(trials, targets),
            LevelResults.of(pooled["windows"], targets) if pooled else None,
            LevelResults.of(pooled["trials"], targets) if pooled else None,
        )

    @property
    def headline(self) -> FoldsLevel:
        """The trial level where every fold has one (the honest unit), else the windows."""
        return self.windows if self.trials is None else self.trials


def _optional(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _text_block(level: LevelResults, name: str) -> list[str]:
    rows = [
        name,
        f"{'target':<10} {'acc':>6} {'bal.acc [95% CI]':>24} {'macro-F1':>9} "
        f"{'majority':>9} {'subj.maj.':>9} {'p(bal>chance)':>14} {'n':>6}",
    ]
    for t, x in level.targets.items():
        lo_hi = x.balanced_accuracy_ci95
        ci = f" [{lo_hi[0]:.2f}, {lo_hi[1]:.2f}]" if lo_hi else ""
        rows.append(
            f"{t:<10} {x.accuracy:>6.3f} {x.balanced_accuracy:>8.3f}{ci:>16} "
            f"{x.macro_f1:>9.3f} {x.majority_baseline:>9.3f} "
            f"{_optional(x.subject_majority_baseline, 3):>9} "
            f"{_optional(x.p_value_balanced_accuracy_vs_chance):>14} {x.support:>6}"
        )
    rows.append(
        f"{'overall':<10} {level.overall_accuracy:>6.3f} {'':>24} {'':>9} "
        f"{level.overall_majority_baseline:>9.3f}"
    )
    return rows


def text_table(split: SplitResults, title: str) -> str:
    """The plain-text table of one split (windows, then trials): test_results.txt."""
    lines = [title, *_text_block(split.windows, "windows")]
    if split.trials is not None:
        name = "trials (mean probability over each trial's windows; the honest unit)"
        lines += ["", *_text_block(split.trials, name)]
    lines.append(
        "(majority = always predicting the training split's majority class; subj.maj. = "
        "predicting each subject's own training majority class, no EEG needed; chance balanced "
        "accuracy = 1/classes; CIs resample whole trials)"
    )
    return "\n".join(lines)


def _value_ci(value: float, lo_hi: tuple[float, float] | None) -> str:
    return f"{value:.3f} [{lo_hi[0]:.2f}, {lo_hi[1]:.2f}]" if lo_hi else f"{value:.3f}"


def markdown_level(level: LevelResults) -> list[str]:
    """Markdown rows of one level (windows or trials) of a split, for report.md."""
    rows = [
        "| target | accuracy [95% CI] | balanced accuracy [95% CI] | macro-F1 | majority "
        "| subject majority | p (bal. acc. > chance) | p (acc. > majority) | n |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t, x in level.targets.items():
        rows.append(
            f"| {t} | {_value_ci(x.accuracy, x.accuracy_ci95)} "
            f"| {_value_ci(x.balanced_accuracy, x.balanced_accuracy_ci95)} | {x.macro_f1:.3f} "
            f"| {x.majority_baseline:.3f} | {_optional(x.subject_majority_baseline, 3)} "
            f"| {_optional(x.p_value_balanced_accuracy_vs_chance)} "
            f"| {_optional(x.p_value_accuracy_vs_majority)} | {x.support} |"
        )
    rows.append(
        f"| overall (all right) | {level.overall_accuracy:.3f} | | "
        f"| {level.overall_majority_baseline:.3f} | | | | |"
    )
    return rows


def markdown_per_subject(split: SplitResults) -> list[str]:
    """Markdown rows of the per-subject test trials (no rows where there is no breakdown)."""
    if not split.per_subject:
        return []
    targets = split.targets
    rows = [
        "| subject | "
        + " | ".join(f"{t} acc / bal. acc / majority / subject majority" for t in targets)
        + " |",
        "|---" * (len(targets) + 1) + "|",
    ]
    for subject in sorted(split.per_subject, key=int):
        cells = []
        for t in targets:
            m = split.per_subject[subject][t]
            values: tuple[float | None, ...] = (m.accuracy, m.balanced_accuracy)
            values += (m.majority_baseline, m.subject_majority_baseline)
            cells.append(" / ".join("-" if v is None else f"{v:.2f}" for v in values))
        rows.append(f"| {subject} | " + " | ".join(cells) + " |")
    return rows


def _folds_block(level: FoldsLevel, name: str) -> list[str]:
    columns = level.metrics
    lines = ["", f"{name}:", "", "| target | " + " | ".join(columns) + " |"]
    lines.append("|---" * (len(columns) + 1) + "|")
    for target, by_metric in level.targets.items():
        cells = [f"{by_metric[m].mean:.3f} ± {by_metric[m].sd:.3f}" for m in columns]
        lines.append(f"| {target} | " + " | ".join(cells) + " |")
    o = level.overall_accuracy
    blanks = " |" * (len(columns) - 1)
    lines.append(f"| overall (all targets right) | {o.mean:.3f} ± {o.sd:.3f} |{blanks}")
    return lines


def cv_summary(summary: CVSummary) -> str:
    """The cross-validation table (cv_results.md): mean ± sd over folds per level, then the
    pooled test rows of all folds."""
    lines = [
        f"Cross-validation, {len(summary.folds)} folds (test split of each fold), mean ± sd",
        *_folds_block(summary.windows, "windows"),
    ]
    if summary.trials is not None:
        lines += _folds_block(summary.trials, "trials (the honest unit)")
    pooled = {"windows": summary.pooled_windows, "trials": summary.pooled_trials}
    for name, level in pooled.items():
        if level is None:
            continue
        parts = [
            f"{t} accuracy {m.accuracy:.3f}, balanced accuracy {m.balanced_accuracy:.3f}, "
            f"majority {m.majority_baseline:.3f} (n={m.support})"
            for t, m in level.targets.items()
        ]
        lines += ["", f"pooled over all folds' test {name}: " + "; ".join(parts)]
    if summary.missing:
        lines += ["", f"missing folds (no results.json): {', '.join(summary.missing)}"]
    return "\n".join(lines)


def markdown_per_fold(summary: CVSummary) -> list[str]:
    """Markdown rows of each fold's test balanced accuracy (trials where every fold has them)."""
    level = summary.headline
    targets = summary.targets
    rows = [
        "| fold | " + " | ".join(f"{t} bal. acc. (trials)" for t in targets) + " |",
        "|---" * (len(targets) + 1) + "|",
    ]
    for i, name in enumerate(summary.folds):
        cells = [f"{level.targets[t]['balanced_accuracy'].per_fold[i]:.3f}" for t in targets]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows
