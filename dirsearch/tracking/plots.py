"""The sweep's plots, as PNG files for the parent MLflow run.

Built on ``matplotlib.figure.Figure`` with the Agg canvas, never pyplot: a driver on a cluster
has no display, and pyplot's global figure registry would keep every figure alive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from dirsearch.config.trial import ImbalanceConfig, ShotsConfig
from dirsearch.imbalance import Binning, PerBinErrors, bin_weights, label_density
from dirsearch.sweep.importance import Reading
from dirsearch.sweep.pareto import Front
from dirsearch.sweep.records import DIVERGED_SENTINEL, TrialRecord

SIZE = (8.0, 4.5)
DPI = 110
REGION_COLOURS = {"many": "#c7e9c0", "medium": "#fff3b0", "few": "#fcbba1"}


def _figure() -> tuple[Figure, object]:
    figure = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def save_png(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def label_density_figure(
    train_targets: np.ndarray, binning: Binning, imbalance: ImbalanceConfig
) -> Figure:
    """Training label density, empirical against LDS-smoothed, and the loss weight per bin that
    the trial trained with (1 everywhere without re-weighting). Without a re-weighting scheme
    the smoothed curve is what ``sqrt_inv`` + LDS would use, for comparison."""
    lds = imbalance.lds
    scheme = imbalance.reweight if imbalance.reweight != "none" else "sqrt_inv"
    kernel = {"kernel": lds.kernel, "ks": lds.ks, "sigma": lds.sigma}
    smoothed = label_density(train_targets, binning, reweight=scheme, lds=True, **kernel)
    weights = bin_weights(
        train_targets, binning, reweight=imbalance.reweight, lds=lds.enabled, **kernel
    )
    centers = binning.centers
    figure, axes = _figure()
    axes.bar(
        centers,
        smoothed.empirical / smoothed.empirical.sum(),
        width=binning.width,
        color="#9ecae1",
        label="empirical",
    )
    axes.plot(
        centers,
        smoothed.effective / smoothed.effective.sum(),
        color="#08519c",
        linewidth=2,
        label=f"LDS-smoothed ({scheme}, {lds.kernel} ks={lds.ks} σ={lds.sigma:g})",
    )
    axes.set_xlabel("target")
    axes.set_ylabel("share of training samples per bin")
    twin = axes.twinx()
    applied = "LDS" if lds.enabled else "no LDS"
    twin.plot(
        centers,
        weights,
        color="#d94801",
        linestyle="--",
        label=f"loss weight ({imbalance.reweight}, {applied})",
    )
    twin.set_ylabel("loss weight per sample")
    _legend(figure, axes, twin)
    axes.set_title("Training label density and the effective loss weights")
    return figure


def _legend(figure: Figure, *axes_list: object) -> None:
    """One legend for twin axes, below the plot where it covers no data."""
    handles, labels = [], []
    for axes in axes_list:
        more_handles, more_labels = axes.get_legend_handles_labels()
        handles += more_handles
        labels += more_labels
    figure.legend(handles, labels, loc="outside lower center", ncols=3, fontsize="small")


def shot_region(train_count: int, shots: ShotsConfig) -> str:
    """The region of a bin by its training samples (the metrics' rule)."""
    if train_count > shots.many:
        return "many"
    return "few" if train_count < shots.few else "medium"


def per_bin_mae_figure(
    errors: PerBinErrors, binning: Binning, shots: ShotsConfig, title: str
) -> Figure:
    """Test MAE per bin against the training label count, many / medium / few shaded."""
    figure, axes = _figure()
    edges = binning.edges
    regions = [shot_region(int(count), shots) for count in errors.train_count]
    labelled: set[str] = set()
    start = 0
    for end in range(1, len(regions) + 1):
        if end == len(regions) or regions[end] != regions[start]:
            region = regions[start]
            axes.axvspan(
                edges[start],
                edges[end],
                color=REGION_COLOURS[region],
                alpha=0.6,
                linewidth=0,
                label=None if region in labelled else f"{region}-shot",
            )
            labelled.add(region)
            start = end
    tested = errors.test_count > 0
    axes.bar(
        binning.centers[tested],
        errors.mae[tested],
        width=binning.width * 0.8,
        color="#3f007d",
        label="test MAE",
    )
    axes.set_xlabel("target")
    axes.set_ylabel("test MAE per bin")
    twin = axes.twinx()
    twin.plot(binning.centers, errors.train_count, color="black", label="training samples")
    twin.set_ylabel("training samples per bin")
    _legend(figure, axes, twin)
    axes.set_title(title)
    return figure


def _scores(records: Sequence[TrialRecord], metric: str, mode: str) -> list[tuple[int, float]]:
    """(trial number, objective) of the trials with a real score (diverged ones have none)."""
    scores = []
    for record in sorted(records, key=lambda r: r.number):
        score = record.score(metric, mode)
        if math.isfinite(score) and abs(score) < DIVERGED_SENTINEL:
            scores.append((record.number, score))
    return scores


def best_so_far_figure(records: Sequence[TrialRecord], metric: str, mode: str) -> Figure:
    """Each trial's objective and the best so far, against trial number."""
    scores = _scores(records, metric, mode)
    numbers = [number for number, _ in scores]
    values = [value for _, value in scores]
    pick = np.minimum if mode == "min" else np.maximum
    figure, axes = _figure()
    axes.scatter(numbers, values, color="#969696", label="trial")
    axes.step(numbers, pick.accumulate(values), where="post", color="#08519c", label="best so far")
    axes.set_xlabel("trial number")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(f"{metric} ({mode})")
    axes.legend(loc="best", fontsize="small")
    axes.set_title("Search progress")
    return figure


def tradeoff_figure(
    records: Sequence[TrialRecord], metric: str, mode: str, best_id: str | None
) -> Figure:
    """Few-shot against overall validation MAE at each trial's best epoch; the winner marked."""
    figure, axes = _figure()
    points = {}
    for record in records:
        row = record.best(metric, mode)
        if row is not None and "val/all/mae" in row and "val/few/mae" in row:
            points[record.trial_id] = (row["val/all/mae"], row["val/few/mae"], record.number)
    axes.scatter(
        [x for x, _, _ in points.values()],
        [y for _, y, _ in points.values()],
        color="#6baed6",
        label="trial (best epoch)",
    )
    for x, y, number in points.values():
        axes.annotate(str(number), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    if best_id in points:
        x, y, number = points[best_id]
        axes.scatter([x], [y], marker="*", s=250, color="#d94801", label=f"best: trial {number}")
    axes.set_xlabel("validation MAE, all")
    axes.set_ylabel("validation MAE, few-shot")
    axes.legend(loc="best", fontsize="small")
    axes.set_title("Few-shot against overall error")
    return figure


def pareto_figure(
    front: Front,
    metrics: Sequence[str],
    winner_id: str | None,
    vanilla: dict[int, tuple[float, ...]],
) -> Figure:
    """The second objective against the first for the trials compared for the front: dominated
    trials grey, the front joined in order, the winner starred, the vanilla start point (trial
    number -> objectives; stopped early or not) circled."""
    figure, axes = _figure()
    optimal = {record.trial_id for record in front.optimal}
    dominated = [front.values[r.trial_id] for r in front.compared if r.trial_id not in optimal]
    axes.scatter(
        [v[1] for v in dominated], [v[0] for v in dominated], color="#bdbdbd", label="dominated"
    )
    line = sorted((front.values[r.trial_id][1], front.values[r.trial_id][0]) for r in front.optimal)
    axes.plot(
        [x for x, _ in line],
        [y for _, y in line],
        color="#08519c",
        marker="o",
        label=f"Pareto front ({len(line)})",
    )
    for record in front.compared:
        first, second = front.values[record.trial_id][:2]
        axes.annotate(
            str(record.number),
            (second, first),
            textcoords="offset points",
            xytext=(4, 3),
            fontsize=7,
        )
    for number, (first, second, *_) in vanilla.items():
        axes.scatter(
            [second],
            [first],
            s=160,
            facecolors="none",
            edgecolors="#238b45",
            linewidths=2,
            label=f"vanilla start point (trial {number})",
        )
    if winner_id in front.values:
        first, second = front.values[winner_id][:2]
        axes.scatter([second], [first], marker="*", s=250, color="#d94801", label="winner")
    axes.set_xlabel(f"{metrics[1]} (validation)")
    axes.set_ylabel(f"{metrics[0]} (validation)")
    axes.legend(loc="best", fontsize="small")
    axes.set_title(f"Pareto front: {metrics[0]} against {metrics[1]}")
    return figure


READING_COLOURS = ("#08519c", "#d94801")


def importance_figure(readings: Sequence[Reading], metric: str) -> Figure:
    """Each searched knob's share of the importance of ``metric``, one bar per reading that has
    numbers, the largest at the top. A reading without numbers is named in the legend with the
    reason, so the plot never suggests it agreed."""
    figure, axes = _figure()
    knobs = list(dict.fromkeys(knob for reading in readings for knob in reading.importances))
    shown = [reading for reading in readings if reading.importances]
    height = 0.8 / max(1, len(shown))
    positions = np.arange(len(knobs))
    handles: list[object] = []
    labels: list[str] = []
    for index, reading in enumerate(shown):
        bars = axes.barh(
            positions - 0.4 + height * (index + 0.5),
            [reading.importances.get(knob, 0.0) for knob in knobs],
            height=height,
            color=READING_COLOURS[index % len(READING_COLOURS)],
        )
        handles.append(bars)
        labels.append(reading.title)
    for reading in readings:
        if not reading.importances:
            handles.append(Patch(facecolor="none", edgecolor="none"))
            labels.append(f"{reading.name}: {reading.no_reading}")
    axes.set_yticks(positions, knobs)
    axes.invert_yaxis()
    axes.set_xlabel(f"share of the importance of {metric} (PED-ANOVA)")
    axes.legend(handles, labels, loc="lower right", fontsize="small")
    axes.set_title("Which knobs matter")
    return figure
