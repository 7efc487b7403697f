"""The MLflow UI page of a sweep: its experiment's runs in the model-training view, best trial
first, the page ``dirsearch ui`` prints and ``dirsearch run`` names at its end.

MLflow 3.17's UI opens an experiment in its GenAI view (traces, judges, an assistant) unless the
URL asks for ``workflowType=machine_learning``. Sorted by a metric, its runs table lists the
trial runs flat, in that metric's order; the metric is ``best/<objective>``, the leaderboard's
score of each trial, since MLflow sorts by a metric's last value and a trial's last epoch is not
always its best.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from dirsearch.sweep.settings import SearchSettings
from dirsearch.tracking.run_layout import best_metric
from dirsearch.tracking.run_map import RunMap

SERVER_SCHEMES = ("http", "https")
"""Tracking stores that are an MLflow server, and so serve the UI themselves."""


def runs_page(server: str, experiment_id: str, search: SearchSettings) -> str:
    """The experiment's runs table on ``server``, sorted best first by the first objective."""
    query = urlencode(
        {
            "workflowType": "machine_learning",
            "orderByKey": f"metrics.`{best_metric(search.objective)}`",
            "orderByAsc": "true" if search.objective_mode == "min" else "false",
        },
        quote_via=quote,
        safe=".",
    )
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def server_address(tracking_uri: str) -> str | None:
    """The browser's address of a tracking store that is an MLflow server, else None (a sqlite
    store needs ``dirsearch ui`` to serve it). It loses the URI's user part and query: a link
    to open in a browser carries no password or token."""
    parts = urlsplit(tracking_uri)
    if parts.scheme not in SERVER_SCHEMES:
        return None
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def served_runs_page(runs: RunMap, search: SearchSettings) -> str | None:
    """The sweep's runs page when its tracking store is an MLflow server, else None."""
    server = server_address(runs.tracking_uri)
    return None if server is None else runs_page(server, runs.experiment_id, search)
