"""Paired comparison of models scored on the same trials: is one better, or is it noise?

Each folder (a run folder, LLM or baseline, or a CV group) gives its trial-level predictions
(`load_trials`: the windows of a trial averaged as `metrics.trial_level` does for every score).
Models are only compared on the same trials with the same true labels (for CV groups, fold by
fold); anything else is refused, naming the folders and the trials that differ. The first
folder is the reference, compared with each other one; per target (`paired`):

- each model's balanced accuracy and their difference (first - other), with a paired bootstrap
  95 % CI: the same resampled trials score both models;
- an exact McNemar test: a two-sided binomial test on the trials exactly one of the two gets
  right (p = 1 when there are none).

CV groups are compared per fold and pooled over all folds' test trials (the verdict). Val
trials are pooled the same way only where each is in one fold's val split: with 3 or more folds
each fold draws its val trials from the other folds' trials, so a trial is validated in several
folds, by models trained on overlapping data, and pooling would count it several times as if
independent. Such groups are compared fold by fold, with one verdict per fold. The p-values are
not corrected for the several targets, pairs and folds.

    result = compare_folders([Path("runs/demo"), Path("runs/demo-lr")])
    write_comparison(["runs/demo", "runs/demo-lr"])  # runs/demo/compare.{md,json}

Outputs go to one folder, published together (`fileio.staged`); a compare.json there from
another comparison (other folders, part or resampling) is replaced only with `overwrite`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from eeg_emotion import fileio
from eeg_emotion.errors import ConfigError, DataError
from eeg_emotion.evaluation import cv, tables
from eeg_emotion.evaluation.metrics import balanced_accuracy, trial_level
from eeg_emotion.evaluation.scoring import Predictions

MARKDOWN, JSON = "compare.md", "compare.json"
ALPHA = 0.05
SHOWN = 5  # trials named in a refusal


@dataclass(frozen=True)
class Trials:
    """A folder's trial-level predictions of one split, sorted by (subject, trial)."""

    folder: Path
    part: str
    model: str  # "LLM classifier" or "<name> baseline"
    targets: list[str]
    num_classes: int
    keys: np.ndarray  # (m, 2): subject, trial
    labels: np.ndarray  # (m, targets) true classes
    preds: np.ndarray  # (m, targets) predicted classes (highest mean probability)
    fold: np.ndarray  # (m,) the fold folder a trial was tested in ("" for a run folder)
    folds: tuple[str, ...] = ()  # a CV group's folds; () for a run folder

    def __len__(self) -> int:
        return len(self.keys)

    def of_fold(self, name: str) -> Trials:
        """The trials of one fold, as from that fold's folder."""
        pick = self.fold == name
        return replace(
            self,
            folder=self.folder / name,
            keys=self.keys[pick],
            labels=self.labels[pick],
            preds=self.preds[pick],
            fold=self.fold[pick],
            folds=(),
        )


def _model(baseline: object) -> str:
    name = baseline.get("name") if isinstance(baseline, dict) else baseline
    return f"{name} baseline" if name else "LLM classifier"


def load_trials(folder: str | Path, part: str = "test") -> Trials:
    """The trial-level predictions of `part` in a run folder (its predictions_<part>.npz,
    scored: results.json has the part) or in a CV group (every fold's, each fold checked as
    `cv.aggregate` checks it)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "no such folder (give run folders or CV group folders)")
    if (folder / "results.json").exists() or (folder / f"predictions_{part}.npz").exists():
        return _run_trials(folder, part)
    if (folder / cv.GROUP_FILE).exists() or cv.unrecorded_folds(folder):
        return _group_trials(folder, part)
    raise DataError(
        folder,
        f"neither a run folder (results.json, predictions_{part}.npz) nor a CV group "
        f"({cv.GROUP_FILE} or fold-<i> folders): nothing to compare",
    )


def _run_trials(folder: Path, part: str, fold: str = "") -> Trials:
    results_file = folder / "results.json"
    if not results_file.exists():
        raise DataError(folder, "not scored: no results.json (did the run finish?)")
    results = fileio.read_json(results_file)
    scored = results.get(part) if isinstance(results, dict) else None
    targets = tables.targets_of(scored) if isinstance(scored, dict) else []
    if not targets:
        raise DataError(results_file, f"has no {part} results (did the run finish?)")
    path = folder / f"predictions_{part}.npz"
    if not path.exists():
        raise DataError(folder, f"has no predictions_{part}.npz: no trial predictions to compare")
    pred = Predictions.load(path)
    if pred.labels.ndim != 2 or pred.labels.shape[1] != len(targets) or not len(pred.rows):
        raise DataError(
            path,
            f"holds predictions of {pred.labels.shape[1:]} targets for {len(pred.rows)} windows, "
            f"but results.json scores {', '.join(targets)}",
        )
    probs, labels, keys = trial_level(pred.probs, pred.labels, pred.rows)
    return Trials(
        folder=folder,
        part=part,
        model=_model(results.get("baseline")),
        targets=targets,
        num_classes=int(pred.probs.shape[-1]),
        keys=keys.astype(np.int64),
        labels=labels.astype(np.int64),
        preds=probs.argmax(-1),
        fold=np.full(len(keys), fold),
    )


def _group_trials(folder: Path, part: str) -> Trials:
    """Every fold's trials of a CV group, together; a trial tested in two folds is refused."""
    group = cv.group_of(folder)
    cv.read_folds(folder, group)  # every fold there, finished, of the group's split and model
    runs = [_run_trials(folder / name, part, name) for name in group.folds]
    for run in runs[1:]:
        _same_targets(runs[0], run)
    keys = np.concatenate([r.keys for r in runs])
    unique, counts = np.unique(keys, axis=0, return_counts=True)
    if (counts > 1).any() and part == "test":  # val trials may repeat: compared fold by fold
        twice = unique[counts > 1]
        raise DataError(
            folder,
            f"{len(twice)} trials are in the {part} split of several folds "
            f"({_named(twice)}): not a cross-validation whose folds can be pooled",
        )
    in_fold = np.concatenate([np.full(len(r), i) for i, r in enumerate(runs)])
    # A trial in several folds comes once per fold, in fold order: two groups of the same
    # folds line up row by row.
    order = np.lexsort((in_fold, keys[:, 1], keys[:, 0]))
    return replace(
        runs[0],
        folder=folder,
        model=_model(group.baseline) if group.recorded else runs[0].model,
        keys=keys[order],
        labels=np.concatenate([r.labels for r in runs])[order],
        preds=np.concatenate([r.preds for r in runs])[order],
        fold=np.concatenate([r.fold for r in runs])[order],
        folds=tuple(group.folds),
    )


def poolable(trials: Trials) -> bool:
    """Whether every trial is in one fold only (always, for a run folder): then the folds'
    trials pool into one test."""
    return len(np.unique(trials.keys, axis=0)) == len(trials)


def _named(keys: np.ndarray) -> str:
    shown = ", ".join(f"subject {s} trial {t}" for s, t in keys[:SHOWN].tolist())
    return shown + (f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")


def _same_targets(a: Trials, b: Trials) -> None:
    if a.targets != b.targets or a.num_classes != b.num_classes:
        raise DataError(
            None,
            f"{a.folder} scores {', '.join(a.targets)} ({a.num_classes} classes), {b.folder} "
            f"{', '.join(b.targets)} ({b.num_classes} classes): compare models of the same targets",
        )


def _same_keys(a: Trials, b: Trials) -> None:
    only_a = np.array(sorted(set(map(tuple, a.keys.tolist())) - set(map(tuple, b.keys.tolist()))))
    only_b = np.array(sorted(set(map(tuple, b.keys.tolist())) - set(map(tuple, a.keys.tolist()))))
    if not len(only_a) and not len(only_b):
        return
    parts = [f"{a.folder} has {len(a)} {a.part} trials, {b.folder} {len(b)}"]
    for folder, only in ((a.folder, only_a), (b.folder, only_b)):
        if len(only):
            parts.append(f"{len(only)} trials only in {folder}: {_named(only)}")
    raise DataError(
        None,
        "; ".join(parts) + ". Compare models scored on the same trials (the same data and split)",
    )


def _same_labels(a: Trials, b: Trials) -> None:
    differ = (a.labels != b.labels).any(axis=1)
    if not differ.any():
        return
    shown = []
    for i in np.flatnonzero(differ)[:SHOWN]:
        s, t = a.keys[i].tolist()
        classes = ", ".join(
            f"{target} {a.labels[i, j]} vs {b.labels[i, j]}"
            for j, target in enumerate(a.targets)
            if a.labels[i, j] != b.labels[i, j]
        )
        shown.append(f"subject {s} trial {t} ({classes})")
    more = f" and {int(differ.sum()) - SHOWN} more" if differ.sum() > SHOWN else ""
    raise DataError(
        None,
        f"{int(differ.sum())} of the {len(a)} {a.part} trials have other true labels in "
        f"{b.folder} than in {a.folder}: {', '.join(shown)}{more} (other data.labels settings?)",
    )


def check_same_trials(runs: Sequence[Trials]) -> None:
    """Every folder scores the first one's targets on the same (subject, trial) set with the
    same true labels; CV groups also fold by fold. Refuses (DataError) naming what differs."""
    first = runs[0]
    for other in runs[1:]:
        if bool(first.folds) != bool(other.folds):
            kinds = [f"{r.folder} is {'a CV group' if r.folds else 'a run folder'}" for r in runs]
            raise DataError(
                None,
                f"{', '.join(kinds)}: compare run folders with run folders, CV groups with CV "
                "groups",
            )
        _same_targets(first, other)
        if first.folds != other.folds:
            raise DataError(
                None,
                f"{first.folder} has folds {', '.join(first.folds)}, {other.folder} "
                f"{', '.join(other.folds)}: compare CV groups of the same folds",
            )
        for name in first.folds:
            _same_keys(first.of_fold(name), other.of_fold(name))
        _same_keys(first, other)
        _same_labels(first, other)


def paired(
    truth: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    *,
    num_classes: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Two models' predictions of the same trials (1-D: one class per trial, `truth` the true
    one): each model's accuracy and balanced accuracy, the balanced-accuracy difference a - b
    with a paired bootstrap 95 % CI (`n_boot` resamples of the trials, seeded, each scoring
    both models), and the exact McNemar test on trial correctness (two-sided binomial test of
    the trials only a gets right among those exactly one gets right; p = 1 when none)."""
    from scipy.stats import binomtest

    truth, pred_a, pred_b = (np.asarray(x).astype(np.int64) for x in (truth, pred_a, pred_b))
    if truth.ndim != 1 or pred_a.shape != truth.shape or pred_b.shape != truth.shape:
        raise ValueError(
            f"paired needs three 1-D arrays of one length, got {truth.shape}, {pred_a.shape}, "
            f"{pred_b.shape}"
        )
    if not len(truth):
        raise ValueError("paired needs at least one trial")
    k = (
        int(max(truth.max(), pred_a.max(), pred_b.max()) + 1)
        if num_classes is None
        else num_classes
    )
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        pick = rng.integers(0, len(truth), len(truth))
        y = truth[pick]
        diffs[i] = balanced_accuracy(y, pred_a[pick], k) - balanced_accuracy(y, pred_b[pick], k)
    right_a, right_b = pred_a == truth, pred_b == truth
    only_a, only_b = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    discordant = only_a + only_b
    bacc_a, bacc_b = balanced_accuracy(truth, pred_a, k), balanced_accuracy(truth, pred_b, k)
    return {
        "trials": len(truth),
        "accuracy_a": float(right_a.mean()),
        "accuracy_b": float(right_b.mean()),
        "balanced_accuracy_a": bacc_a,
        "balanced_accuracy_b": bacc_b,
        "balanced_accuracy_difference": bacc_a - bacc_b,
        "balanced_accuracy_difference_ci95": [
            float(np.percentile(diffs, 2.5)),
            float(np.percentile(diffs, 97.5)),
        ],
        "only_a_correct": only_a,
        "only_b_correct": only_b,
        "both_correct": int((right_a & right_b).sum()),
        "both_wrong": int((~right_a & ~right_b).sum()),
        "p_value_mcnemar": float(binomtest(only_a, discordant, 0.5).pvalue) if discordant else 1.0,
        "resamples": n_boot,
        "seed": seed,
    }


def _p(p: float) -> str:
    return f"p={p:.3f}" if p >= 0.001 else f"p={p:.1e}"


def verdict(result: dict[str, Any], a: str, b: str, alpha: float = ALPHA) -> str:
    """One line on a `paired` result: which model is better (McNemar p below `alpha`), or
    no significant difference."""
    p = result["p_value_mcnemar"]
    if p >= alpha:
        return f"no significant difference between {a} and {b} ({_p(p)})"
    better, worse = (a, b) if result["only_a_correct"] > result["only_b_correct"] else (b, a)
    line = f"{better} better than {worse} ({_p(p)})"
    lo, hi = result["balanced_accuracy_difference_ci95"]
    if lo <= 0 <= hi:  # the two tests disagree: say so rather than overstate
        line += f"; the balanced-accuracy difference's 95 % CI [{lo:.3f}, {hi:.3f}] includes 0"
    return line


def _pair(a: Trials, b: Trials, *, n_boot: int, seed: int, alpha: float) -> dict[str, Any]:
    """One comparison: per target over all trials (pooled over a CV group's folds) and per
    fold, with its verdict. Where trials repeat over the folds (val trials of 3 or more folds)
    nothing is pooled: "all" and "verdict" are None and each fold has its verdict in
    "per_fold_verdicts"."""
    pooled = poolable(a)
    by_target: dict[str, dict[str, Any]] = {}
    for j, target in enumerate(a.targets):

        def test(pick: np.ndarray, j: int = j) -> dict[str, Any]:
            args = (a.labels[pick, j], a.preds[pick, j], b.preds[pick, j])
            return paired(*args, num_classes=a.num_classes, n_boot=n_boot, seed=seed)

        per_fold = {name: test(a.fold == name) for name in a.folds}
        if pooled:
            overall = test(np.ones(len(a), bool))
            by_target[target] = {
                "all": overall,
                "per_fold": per_fold,
                "verdict": verdict(overall, str(a.folder), str(b.folder), alpha),
            }
            continue
        by_target[target] = {
            "all": None,
            "per_fold": per_fold,
            "verdict": None,
            "per_fold_verdicts": {
                name: verdict(x, str(a.folder / name), str(b.folder / name), alpha)
                for name, x in per_fold.items()
            },
        }
    return {"a": str(a.folder), "b": str(b.folder), "targets": by_target}


def compare_folders(
    folders: Sequence[str | Path],
    *,
    part: str = "test",
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = ALPHA,
) -> dict[str, Any]:
    """The first folder against each other one (run folders or CV groups scored on the same
    trials), per target: what compare.json holds."""
    paths = _inputs(folders)
    runs = [load_trials(p, part) for p in paths]
    check_same_trials(runs)
    first = runs[0]
    pairs = [_pair(first, other, n_boot=n_boot, seed=seed, alpha=alpha) for other in runs[1:]]
    return {
        "part": part,
        "resamples": n_boot,
        "seed": seed,
        "alpha": alpha,
        "targets": first.targets,
        "trials": len(np.unique(first.keys, axis=0)),  # distinct, where val trials repeat
        "folds": list(first.folds),
        "models": [
            {"folder": str(r.folder), "path": str(r.folder.resolve()), "model": r.model}
            for r in runs
        ],
        "comparisons": pairs,
        "verdicts": [
            f"{target}: {line}"
            for c in pairs
            for target in first.targets
            for line in _verdict_lines(c["targets"][target])
        ],
    }


def _verdict_lines(by_level: dict[str, Any]) -> list[str]:
    if by_level["verdict"] is not None:
        return [by_level["verdict"]]
    return list(by_level["per_fold_verdicts"].values())


def _inputs(folders: Sequence[str | Path]) -> list[Path]:
    paths = [Path(f) for f in folders]
    if len(paths) < 2:
        shown = f" ({paths[0]})" if paths else ""
        raise ConfigError(f"compare needs two or more folders, got {len(paths)}{shown}")
    seen: dict[Path, Path] = {}
    for p in paths:
        if p.resolve() in seen:
            raise ConfigError(f"{p} is given twice (as {seen[p.resolve()]} and {p})")
        seen[p.resolve()] = p
    return paths


def markdown(result: dict[str, Any]) -> str:
    """compare.md: the models, one table of the comparisons (and one per fold for CV groups),
    one verdict line per comparison and target."""
    part, folds = result["part"], result["folds"]
    first = result["comparisons"][0]["targets"]
    separate = any(t["all"] is None for t in first.values())  # val trials repeat over folds
    pooled = f", pooled over {len(folds)} folds" if folds else ""
    if separate:
        pooled = (
            f" in {len(folds)} folds, some in the {part} split of several folds (each fold draws "
            f"its {part} trials from the other folds' trials): compared fold by fold, not pooled"
        )
    lines = [f"# Model comparison: {part} trials", "", "Models:", ""]
    lines += [f"- `{m['folder']}`: {m['model']}" for m in result["models"]]
    lines += [
        "",
        f"{result['trials']} {part} trials{pooled}, the same (subject, trial) and true labels in "
        "every folder. Trial predictions: the class of highest mean probability over the "
        "trial's windows. Difference = balanced accuracy of A (the first folder) minus B's, "
        f"with a paired bootstrap 95 % CI ({result['resamples']} resamples of the trials, seed "
        f"{result['seed']}); McNemar: exact two-sided binomial test on the trials exactly one of "
        "the two gets right. p-values are not corrected for several targets or comparisons.",
    ]
    if not separate:
        lines += ["", f"## All {part} trials{pooled}", "", *_table(result, lambda t: t["all"])]
    for name in folds:
        lines += ["", f"## {name}", "", *_table(result, lambda t, n=name: t["per_fold"][n])]
    lines += ["", "## Verdicts", "", *[f"- {v}" for v in result["verdicts"]]]
    return "\n".join(lines) + "\n"


def _table(result: dict[str, Any], level: Any) -> list[str]:
    rows = [
        "| A | B | target | trials | bal. acc. A | bal. acc. B | difference [95% CI] "
        "| only A right | only B right | McNemar p |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in result["comparisons"]:
        for target, by_level in c["targets"].items():
            x = level(by_level)
            lo, hi = x["balanced_accuracy_difference_ci95"]
            rows.append(
                f"| `{c['a']}` | `{c['b']}` | {target} | {x['trials']} "
                f"| {x['balanced_accuracy_a']:.3f} | {x['balanced_accuracy_b']:.3f} "
                f"| {x['balanced_accuracy_difference']:+.3f} [{lo:+.3f}, {hi:+.3f}] "
                f"| {x['only_a_correct']} | {x['only_b_correct']} | {x['p_value_mcnemar']:.4f} |"
            )
    return rows


def _identity(result: dict[str, Any]) -> dict[str, Any]:
    """What makes two comparisons the same one (a rerun may replace its own outputs)."""
    keys = ("part", "resamples", "seed", "alpha")
    models = result.get("models")
    paths = [m.get("path") for m in models] if isinstance(models, list) else None
    return {**{k: result.get(k) for k in keys}, "paths": paths}


def check_out(out: Path, planned: dict[str, Any], *, overwrite: bool = False) -> None:
    """Refuse an --out that is a file, or that holds another comparison's compare.md/.json
    (other folders, part or resampling) unless `overwrite`; the same comparison is refreshed."""
    if out.exists() and not out.is_dir():
        raise DataError(out, "--out is a file; give the folder to write compare.md into")
    if overwrite:
        return
    stored = out / JSON
    if stored.exists():
        try:
            earlier = fileio.load_json(stored)
        except (OSError, ValueError):
            earlier = None
        if not isinstance(earlier, dict):
            raise DataError(stored, "is not a readable comparison; --overwrite replaces it")
        if _identity(earlier) != _identity(planned):
            shown = ", ".join(str(m.get("folder")) for m in earlier.get("models") or [])
            raise DataError(
                stored,
                f"holds another comparison ({shown}; {earlier.get('part')} trials, "
                f"{earlier.get('resamples')} resamples, seed {earlier.get('seed')}): choose "
                "another --out, or --overwrite to replace it",
            )
    elif (out / MARKDOWN).exists():
        raise DataError(
            out / MARKDOWN,
            "exists without the compare.json of a comparison; --overwrite replaces it",
        )


def write_comparison(
    folders: Sequence[str | Path],
    out: str | Path | None = None,
    *,
    part: str = "test",
    n_boot: int = 1000,
    seed: int = 0,
    overwrite: bool = False,
) -> tuple[str, Path]:
    """`compare_folders` and write OUT/compare.md and OUT/compare.json together (OUT: the first
    folder by default); returns the markdown and OUT."""
    paths = _inputs(folders)
    folder = paths[0] if out is None else Path(out)
    planned = {"part": part, "resamples": n_boot, "seed": seed, "alpha": ALPHA}
    planned["models"] = [{"path": str(p.resolve())} for p in paths]
    check_out(folder, planned, overwrite=overwrite)  # before any work
    result = compare_folders(paths, part=part, n_boot=n_boot, seed=seed)
    text = markdown(result)
    with fileio.writing(folder), fileio.staged(folder) as tmp:
        fileio.write_file(tmp / JSON, json.dumps(result, indent=1))
        fileio.write_file(tmp / MARKDOWN, text)
    return text, folder
