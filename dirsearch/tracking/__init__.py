"""MLflow, on the driver only.

``callback`` turns Tune's trial events into writes of ``run_layout`` (the sweep's parent run,
a child run per trial, reopening after a resume, ghost removal), sent through ``write_queue``
(in order, retried while ``store`` is down); ``run_map`` keeps trial -> run in the sweep
folder; ``publish`` puts a finished sweep's tables, ``plots`` and ``model_export``'s model on
the parent run; ``server`` runs a local ``mlflow server``."""
