"""The parent run's description (``tracking.run_description``) from a sweep folder's tables:
which sections, in which order, and a text past MLflow's tag size cut at a whole line with a
note. The description of a real sweep on a real store is checked in ``test_tracking``, and on
the run's page in ``test_ui_browser``."""

from __future__ import annotations

from dirsearch.sweep.folder import ABLATION_MD, IMPORTANCE_MD, PARETO_MD, RESULTS_MD
from dirsearch.tracking.run_description import sweep_description
from dirsearch.tracking.run_layout import MAX_TAG_LENGTH

RESULTS = """\
best trial 3 (reweight=sqrt_inv, lr=0.0042), 1 seed(s); test split:

| region | mae | mse | gm |
|---|---|---|---|
| all | 7.91 | 101.2 | 5.02 |
| few | 9.13 | 140.8 | 6.44 |
"""
PARETO = "| trial | val/few/mae | val/all/mae |\n|---|---|---|\n| 3 | 9.0 | 8.1 |\n"
IMPORTANCE = "| setting | importance |\n|---|---|\n| train.lr | 0.71 |\n"
ABLATION = "| variant | test/few/mae |\n|---|---|\n| as found | 9.13 |\n| no LDS | 9.80 |\n"


def test_every_table_present_in_order_each_under_its_heading() -> None:
    texts = {
        ABLATION_MD: ABLATION,
        IMPORTANCE_MD: IMPORTANCE,
        PARETO_MD: PARETO,
        RESULTS_MD: RESULTS,
        "leaderboard.md": "| rank |\n",  # not part of the description
    }
    text = sweep_description(texts)
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Winner",
        "## Pareto front",
        "## Importance of the searched settings",
        "## Ablation",
    ]
    for table in (RESULTS, PARETO, IMPORTANCE, ABLATION):
        assert table.strip() in text
    assert "rank" not in text


def test_missing_tables_are_left_out() -> None:
    text = sweep_description({RESULTS_MD: RESULTS, PARETO_MD: None, ABLATION_MD: None})
    assert text == f"## Winner\n\n{RESULTS.strip()}\n"


def test_a_text_past_the_tag_size_is_cut_at_a_whole_line_with_a_note() -> None:
    rows = "".join(f"| variant {k} without component {k} | {k}.123456 |\n" for k in range(300))
    long_ablation = f"| variant | test/few/mae |\n|---|---|\n{rows}"
    texts = {RESULTS_MD: RESULTS, ABLATION_MD: long_ablation}
    text = sweep_description(texts)
    assert len(sweep_description(texts, limit=10**6)) > MAX_TAG_LENGTH  # the case at hand
    assert MAX_TAG_LENGTH - 100 < len(text) <= MAX_TAG_LENGTH
    body, note = text.rstrip("\n").rsplit("\n", 1)
    assert note.startswith("*(cut to MLflow's tag size") and ABLATION_MD in note
    whole = set(sweep_description(texts, limit=10**6).splitlines())
    assert all(line in whole for line in body.splitlines())  # no line cut halfway
    assert RESULTS.strip() in body  # the winner comes first and is whole
