"""MLflow, on the driver only: the tracking store, the sweep's parent and trial runs, the Tune
callback that feeds them, and what a finished sweep publishes (tables, plots, the model)."""
