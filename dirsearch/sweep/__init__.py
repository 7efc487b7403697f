"""A sweep in plain Python: the search-space file turned into a validated spec, its dimensions and
conditions, and the sweep folder's files, records and tables. Imports neither Ray nor MLflow."""
