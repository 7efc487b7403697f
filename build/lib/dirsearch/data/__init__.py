"""Datasets by name (synthetic, csv_images, tabular), DIR split building and preparation."""
