"""One trial in plain PyTorch: the epoch loop over small parts (RNG streams, objective,
optimisation, FDS statistics, evaluation, checkpoints). Imports neither Ray nor MLflow."""
