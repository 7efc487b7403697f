"""The winner's model as an MLflow 3 LoggedModel of the sweep's parent run.

A LoggedModel (not files logged by hand under the run) is what MLflow 3 lists in the runs
table's Models column, finds by ``runs:/<parent>/model`` or ``models:/<model id>`` and registers.
``mlflow.pytorch.log_model`` would make one too, but it exports the model again inside the
upload, writes through the process-wide tracking URI rather than the sweep's client, and logs
the run's metrics a second time; here the model folder is exported once, locally, and uploaded
by the sweep's own client through the write queue.
"""

from __future__ import annotations

from pathlib import Path

from mlflow.entities import LoggedModel, LoggedModelOutput, LoggedModelStatus
from mlflow.models import Model
from mlflow.models.model import MLMODEL_FILE_NAME

from dirsearch.tracking.run_layout import RunLayout


class LoggedModelUpload:
    """One write of the queue: create (or find) the parent run's LoggedModel ``name``, upload
    the model folder into it, link it to the run as an output and mark it READY.

    The queue runs a failed write again whole, so each step remembers that it is done: a retry
    after an outage neither makes a second model nor links one twice. A model of the same name
    that the parent already has (a finish run again after a resume) is reused."""

    def __init__(
        self,
        layout: RunLayout,
        folder: Path,
        name: str,
        params: dict[str, str],
        tags: dict[str, str],
    ) -> None:
        self.layout, self.folder, self.name = layout, Path(folder), name
        self.params, self.tags = params, tags
        self.model: LoggedModel | None = None
        self._uploaded = self._linked = False

    def __call__(self) -> None:
        client, parent = self.layout.client, self.layout.runs.parent
        if self.model is None:
            self.model = self._existing() or self._create()
        model_id = self.model.model_id
        if not self._uploaded:
            self._record_identity(self.model)
            client.log_model_artifacts(model_id, str(self.folder))
            self._uploaded = True
        if not self._linked:
            outputs = client.get_run(parent).outputs
            linked = {output.model_id for output in (outputs.model_outputs if outputs else [])}
            if model_id not in linked:
                client.log_outputs(parent, [LoggedModelOutput(model_id, step=0)])
            self._linked = True
        client.finalize_logged_model(model_id, LoggedModelStatus.READY)

    def _existing(self) -> LoggedModel | None:
        """The parent's model of this name, if an earlier finish made it."""
        client, runs = self.layout.client, self.layout.runs
        token = None
        while True:
            page = client.search_logged_models(
                [runs.experiment_id], filter_string=f"name = '{self.name}'", page_token=token
            )
            for model in page:
                if model.source_run_id == runs.parent:
                    return model
            token = page.token
            if not token:
                return None

    def _create(self) -> LoggedModel:
        runs = self.layout.runs
        return self.layout.client.create_logged_model(
            runs.experiment_id,
            name=self.name,
            source_run_id=runs.parent,
            params=self.params,
            tags=self.tags,
        )

    def _record_identity(self, model: LoggedModel) -> None:
        """The MLmodel names the LoggedModel and run it belongs to, as ``log_model`` writes it."""
        path = self.folder / MLMODEL_FILE_NAME
        mlmodel = Model.load(str(path))
        mlmodel.model_id = mlmodel.model_uuid = model.model_id
        mlmodel.run_id = self.layout.runs.parent
        mlmodel.artifact_path = model.artifact_location
        mlmodel.save(str(path))
