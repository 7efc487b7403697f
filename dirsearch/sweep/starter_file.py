"""The commented space file ``dirsearch init`` writes: the data section filled in from the CSV,
the model and budget sized to it, and the DIR knobs searched as in the shipped space files.

Text rather than a YAML dump, so every decision carries the comment that says where it came
from and what to change; the file is read back through ``load_sweep_spec`` before init reports
success, so what it writes always validates.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass

from dirsearch.sweep.starter import StarterPlan

FDS_MIN_BINS = 2
"""FDS is searched only with more bins than this (its ks-5 kernel pads 2 bins at each end)."""


@dataclass(frozen=True)
class StarterRefs:
    """How the written file names things: paths relative to its own folder, and its header."""

    command: str
    """The init command line, quoted in the header."""
    experiment: str
    csv: str
    """data.csv: the CSV with the split column (the input, or the split init wrote)."""
    root: str | None = None
    cache_dir: str | None = None
    schema: str | None = None
    """The schema file for the editor line, or None to leave the line out."""


def starter_yaml(plan: StarterPlan, refs: StarterRefs) -> str:
    """The whole space file."""
    sections = [_header(plan, refs), _data(plan, refs), _model_train(plan), _imbalance(plan)]
    sections += [_search(plan), _space(plan)]
    return "\n".join(sections)


def _header(plan: StarterPlan, refs: StarterRefs) -> str:
    data, bins, counts = plan.data, plan.binning, plan.split_counts()
    regions = plan.regions()
    about = (
        f"Written by `{refs.command}`: a sweep of the DIR knobs (re-weighting, LDS, FDS) and the "
        f"learning rate, sized for minutes on a CPU. `dirsearch validate` shows what it "
        f"searches, `dirsearch run` runs it; --set tries one value without editing "
        f"(--set train.epochs=60, --set search.num_samples=40)."
    )
    if plan.cap is None:
        splits = f"Splits: the CSV's own ({_splits(counts)})."
    else:
        splits = (
            f"Splits: {data.csv.name} has no split column, so {refs.csv} holds balanced DIR "
            f"splits ({_splits(counts)}): per bin of n rows val = test = min({plan.cap}, n // 3), "
            f"the rest trains (`dirsearch data split --cap {plan.cap} --bin-width "
            f"{_number(bins.width)}`; this cap holds out at most AgeDB-DIR's share, 26%)."
        )
    binning = (
        f"Bins: the targets ({data.target}) span [{float(data.targets.min()):g}, "
        f"{float(data.targets.max()):g}]: {bins.count} bins of width {_number(bins.width)} from "
        f"{_number(bins.start)}, the rule of `bins: auto` (one bin per integer for integer "
        f"targets spanning under 200 values, else a readable width giving at most 100 bins)."
    )
    many, few = plan.proportional
    moved = (
        ""
        if (plan.many, plan.few) == (many, few)
        else f" (moved from many > {many}, few < {few}, which leave the validation split no "
        f"few-shot or no many-shot bin)"
    )
    shots = (
        f"Shots: the paper's many > 100 / few < 20 training samples per bin are fractions of "
        f"AgeDB-DIR's fullest bin (353); here the fullest holds {int(plan.train_counts.max())}, "
        f"so many > {plan.many}, few < {plan.few}{moved}: {regions.count('many')} many-shot, "
        f"{regions.count('medium')} medium and {regions.count('few')} few-shot bins."
    )
    lines = [f"# yaml-language-server: $schema={refs.schema}"] if refs.schema else []
    for paragraph in (about, splits, binning, shots):
        lines += textwrap.wrap(paragraph, 98, initial_indent="# ", subsequent_indent="# ")
        lines.append("#")
    lines[-1:] = [f"experiment: {refs.experiment}", "seed: 0"]
    return "\n".join(lines)


def _data(plan: StarterPlan, refs: StarterRefs) -> str:
    data, bins = plan.data, plan.binning
    lines = ["data:", f"  name: {data.kind}", f"  csv: {_text(refs.csv)}"]
    if data.kind == "csv_images":
        if refs.root is not None:
            lines.append(f"  root: {_text(refs.root)}            # the image folder of the paths")
        lines.append(f"  target: {_text(data.target)}")
        lines.append(
            f"  image_size: {plan.budget.image_size}         # small for a CPU; 64-224 on GPUs"
        )
        if refs.cache_dir is not None:
            lines.append(f"  cache_dir: {_text(refs.cache_dir)}   # images decoded once, shared")
    else:
        lines.append(f"  target: {_text(data.target)}")
        features = "[" + ", ".join(_text(name) for name in data.features) + "]"
        skipped = ", ".join(data.skipped)
        note = f"   # not numbers, left out: {skipped}" if skipped else ""
        lines.append(f"  features: {features}{note}")
    lines.append(
        f"  bins: {{start: {_number(bins.start)}, width: {_number(bins.width)}, "
        f"count: {bins.count}}}"
    )
    return "\n".join(lines)


def _model_train(plan: StarterPlan) -> str:
    budget = plan.budget
    lines = ["model:", f"  arch: {budget.arch}"]
    if budget.mlp_hidden is not None:
        lines.append(f"  mlp_hidden: [{', '.join(str(size) for size in budget.mlp_hidden)}]")
    tabular = plan.data.kind == "tabular"
    lines += [
        "train:",
        f"  epochs: {budget.epochs}",
        f"  batch_size: {budget.batch_size}",
        f"  optimizer: {'adamw' if tabular else 'adam'}",
        "  lr: 1.0e-3",
        "  schedule: {name: cosine}",
        "  loss: l1",
    ]
    return "\n".join(lines)


def _imbalance(plan: StarterPlan) -> str:
    update, smooth = plan.budget.fds_start_update, plan.budget.fds_start_smooth
    return "\n".join(
        [
            "imbalance:",
            "  reweight: none",
            "  lds: {enabled: false, kernel: gaussian, ks: 5, sigma: 2}   # searched below",
            f"  fds: {{enabled: false, kernel: gaussian, ks: 5, sigma: 2, momentum: 0.9, "
            f"start_update: {update}, start_smooth: {smooth}}}",
            f"  shots: {{many: {plan.many}, few: {plan.few}}}",
        ]
    )


def _search(plan: StarterPlan) -> str:
    budget = plan.budget
    return "\n".join(
        [
            "search:",
            "  metric: val/few/mae          # the few-shot MAE on the balanced validation split",
            "  mode: min",
            f"  num_samples: {budget.num_samples}",
            "  max_concurrent: 2",
            "  resources: {cpu: 1, gpu: 0}",
            f"  searcher: {{name: optuna, seed: 0, startup_trials: {budget.startup_trials}}}",
            f"  scheduler: {{name: asha, grace_period: {budget.grace_period}, "
            f"reduction_factor: 3}}",
            "  points:            # start points: vanilla training and the paper's SQINV + LDS",
            "    - {imbalance.reweight: none, imbalance.fds.enabled: false}",
            "    - {imbalance.reweight: sqrt_inv, imbalance.lds.enabled: true, "
            "imbalance.lds.kernel: gaussian,",
            "       imbalance.lds.ks: 5, imbalance.lds.sigma: 2.0, imbalance.fds.enabled: false}",
        ]
    )


def _space(plan: StarterPlan) -> str:
    lines = [
        "space:",
        "  imbalance.reweight: {choice: [none, inverse, sqrt_inv]}",
        "  imbalance.lds.enabled: {choice: [false, true], when: {imbalance.reweight: "
        "[inverse, sqrt_inv]}}",
        "  imbalance.lds.kernel: {choice: [gaussian, triang, laplace], "
        "when: imbalance.lds.enabled}",
        "  imbalance.lds.ks: {int: [3, 9], step: 2, when: imbalance.lds.enabled}",
        "  imbalance.lds.sigma: {loguniform: [0.5, 8.0], when: imbalance.lds.enabled}",
    ]
    if plan.binning.count > FDS_MIN_BINS:  # FDS's kernel (ks 5) reflect-pads 2 bins at each end
        lines += [
            "  imbalance.fds.enabled: {choice: [false, true]}",
            "  imbalance.fds.momentum: {uniform: [0.5, 0.99], when: imbalance.fds.enabled}",
        ]
    if plan.data.kind == "tabular":
        lines += [
            "  train.lr: {loguniform: [1.0e-4, 1.0e-2]}",
            "  train.weight_decay: {loguniform: [1.0e-6, 1.0e-2]}",
        ]
    else:
        lines.append("  train.lr: {loguniform: [5.0e-4, 4.0e-3]}")
    return "\n".join(lines) + "\n"


def _splits(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in counts.items())


def _number(value: float) -> str:
    """A bin edge or width as YAML reads it back exactly: 200, 0.05, 12.5."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _text(value: str) -> str:
    """A path or column name as a YAML string (JSON's quoting is valid YAML)."""
    return json.dumps(value)
