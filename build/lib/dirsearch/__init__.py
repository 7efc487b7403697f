"""dirsearch: hyper-parameter search for Deep Imbalanced Regression."""
