"""The MLflow tracking store of a sweep: which one, how the driver connects to it, and which of
its errors mean it is down (the write queue retries those) rather than refusing a write."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INTERNAL_ERROR,
    REQUEST_LIMIT_EXCEEDED,
    TEMPORARILY_UNAVAILABLE,
    ErrorCode,
)
from mlflow.tracking import MlflowClient

from dirsearch.errors import ConfigError
from dirsearch.sweep.folder import DEFAULT_STORE
from dirsearch.tracking.write_queue import Failure

TRANSIENT = frozenset(
    ErrorCode.Name(code)
    for code in (INTERNAL_ERROR, TEMPORARILY_UNAVAILABLE, REQUEST_LIMIT_EXCEEDED)
)
"""MLflow's error codes for a store that is down or overloaded (a failed connection is
INTERNAL_ERROR), not for a bad request."""


def tracking_uri(folder: str, given: str | None) -> str:
    """``given``, else ``MLFLOW_TRACKING_URI``, else a sqlite file in the sweep folder (absolute:
    Ray changes the working directory). A sweep folder on an object store has no place for a
    sqlite file, so its store goes beside the current folder's ``runs/``."""
    uri = given or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    local = folder if "://" not in folder else str(Path("runs").resolve())
    return f"sqlite:///{Path(local).resolve()}/{DEFAULT_STORE}"


def uri_source(given: str | None) -> str:
    """Where ``tracking_uri(folder, given)`` takes its URI from, in the words of a message."""
    if given:
        return "--tracking-uri"
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return "MLFLOW_TRACKING_URI"
    return "the default, the sweep folder's own store"


def shown(uri: str) -> str:
    """``uri`` fit for a message: a password or token in its user part and the values of its
    query are replaced by ``***`` (``https://user:***@host``), so an error line or a log never
    carries credentials."""
    parts = urlsplit(uri)
    if not parts.scheme or not parts.netloc:
        return uri
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        name, has_secret, _ = user.partition(":")
        netloc = f"{name}:***@{host}" if has_secret else f"***@{host}"
    query = "&".join(f"{key}=***" for key, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def connect(uri: str) -> MlflowClient:
    """A client whose requests fail fast (the write queue retries, not MLflow's minutes-long
    backoff), checked now: an unreachable server is a one-line ConfigError before Ray starts."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=uri)
    try:
        client.search_experiments(max_results=1)
    except Exception as error:
        raise ConfigError(
            f"--tracking-uri {shown(uri)}: the MLflow tracking store cannot be reached "
            f"({str(error).splitlines()[0][:200]}); start the server or give another URI"
        ) from None
    return client


def classify(error: Exception) -> Failure | None:
    """The write queue's judgement of a failed write. Artifact uploads fail with requests'
    connection errors, which are OSErrors; anything that is neither an MLflow error nor an
    OSError is a bug and is raised."""
    if isinstance(error, MlflowException):
        return Failure.DOWN if error.error_code in TRANSIENT else Failure.REFUSED
    if isinstance(error, OSError):
        return Failure.DOWN
    return None
