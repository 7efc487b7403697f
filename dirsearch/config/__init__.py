"""The typed, frozen trial config: its fields and defaults, the YAML loader that reports every
problem at once, and the cross-field rules. Imports neither Ray, MLflow nor torch."""
