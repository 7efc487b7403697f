"""The resolved sweep in a few lines, as ``dirsearch validate`` prints it: what is fixed, what is
searched, the budget and the resources."""

from __future__ import annotations

from dirsearch.config.trial import TrialConfig
from dirsearch.sweep.paths import flatten
from dirsearch.sweep.spec import SweepSpec


def summary(spec: SweepSpec) -> str:
    """The resolved sweep in a few lines: what is fixed, what is searched, budget, resources."""
    search = spec.search
    fixed = flatten(spec.fixed)
    defaults = flatten(TrialConfig().to_dict())
    changed = {key: value for key, value in fixed.items() if defaults.get(key) != value}
    lines = [f"{spec.source}: valid", f"experiment: {spec.experiment}", "fixed (non-default):"]
    lines += [f"  {key}: {value}" for key, value in changed.items()]
    lines.append(bins_line(spec))
    lines.append(f"dimensions ({len(spec.dimensions)}):")
    lines += [f"  {dimension.describe()}" for dimension in spec.dimensions]
    scheduler = search.scheduler
    schedule = (
        f"asha (grace {scheduler.grace_period}, reduction {scheduler.reduction_factor}, "
        f"max {spec.epochs} epochs)"
        if scheduler.name == "asha"
        else "fifo"
    )
    lines += [
        f"search: {search.searcher.name}, {objectives(spec)}, scheduler {schedule}",
        f"budget: {spec.total_trials} trials x {search.repeats} seed(s) x up to {spec.epochs} "
        f"epochs, {len(spec.points)} given point(s)"
        + (
            f", confirm top {search.confirm.top_k} with {search.confirm.seeds} fresh seeds"
            if search.confirm.top_k
            else ""
        )
        + (
            f", ablation of the winner with {search.ablate.seeds} fresh seeds per variant"
            if search.ablate.seeds
            else ""
        ),
        f"resources: {search.resources.cpu:g} CPU, {search.resources.gpu:g} GPU per trial, "
        f"{search.max_concurrent} at a time",
    ]
    return "\n".join(lines)


def objectives(spec: SweepSpec) -> str:
    """What the search optimises: one objective, or several (a Pareto front; ASHA on the first)."""
    search = spec.search
    named = ", ".join(
        f"{mode} {metric}" for metric, mode in zip(search.metrics, search.modes, strict=True)
    )
    if not search.multi_objective:
        return named
    stops = " (ASHA stops on the first)" if search.scheduler.name == "asha" else ""
    return f"{named}: Pareto front{stops}"


def bins_line(spec: SweepSpec) -> str:
    """The target bins every trial uses, and whether they came from the training targets: the
    one setting LDS, FDS and the shot regions all depend on."""
    bins, shots = spec.fixed["data"]["bins"], spec.fixed["imbalance"]["shots"]
    end = bins["start"] + bins["width"] * bins["count"]
    derived = f" (data.bins: {spec.bins_from}, derived from the targets)" if spec.bins_from else ""
    return (
        f"bins: {bins['count']} of width {bins['width']:g} over [{bins['start']:g}, {end:g})"
        f"{derived}; shots: many > {shots['many']}, few < {shots['few']} training samples per bin"
    )
