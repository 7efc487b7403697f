"""The parent run's description (the tag ``mlflow.note.content``, markdown on the run's page):
the sweep's outcome at a glance, from the sweep folder's tables, without opening an artifact.

A tag value has a size limit, and a front or an ablation of many trials can pass it: the text
is cut after its last whole line that fits, with a note saying where the whole tables are (the
same files are the parent run's artifacts).
"""

from __future__ import annotations

from collections.abc import Mapping

from dirsearch.sweep.folder import ABLATION_MD, IMPORTANCE_MD, PARETO_MD, RESULTS_MD
from dirsearch.tracking.run_layout import MAX_TAG_LENGTH

SECTIONS = (
    (RESULTS_MD, "Winner"),
    (PARETO_MD, "Pareto front"),
    (IMPORTANCE_MD, "Importance of the searched settings"),
    (ABLATION_MD, "Ablation"),
)
"""The sweep folder's tables in the description, in this order, each one when it exists."""


def sweep_description(texts: Mapping[str, str | None], limit: int = MAX_TAG_LENGTH) -> str:
    """The description from the sweep folder's files (name -> text, None for a missing file),
    at most ``limit`` characters."""
    present = [(name, title) for name, title in SECTIONS if texts.get(name)]
    text = "\n".join(f"## {title}\n\n{texts[name].strip()}\n" for name, title in present)
    if len(text) <= limit:
        return text
    files = ", ".join(name for name, _ in present)
    note = f"\n*(cut to MLflow's tag size; the whole tables are this run's artifacts {files})*\n"
    kept = text[: max(0, limit - len(note))]
    # Whole lines only: a table row cut halfway would render as stray text.
    return kept[: kept.rfind("\n") + 1] + note
