"""Small ideas every layer shares, each with one home: how numbers and settings are written, the
mean and spread over seeds, which of two objective values is better, and writing a file whole.
Plain Python: imports nothing of dirsearch, torch, Ray or MLflow."""
