"""Ray Tune searchers: Optuna told the truth about stopped trials, and a fixed list of points."""
