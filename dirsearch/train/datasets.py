"""Dataset by name: the one place a DataConfig becomes a DataBundle."""

from __future__ import annotations

from pathlib import Path

from dirsearch.config.trial import DataConfig
from dirsearch.data.base import DataBundle


def load_data(config: DataConfig) -> DataBundle:
    """Load the dataset ``config.name`` names (paths in ``config`` are already absolute)."""
    if config.name == "synthetic":
        from dirsearch.data.synthetic import make_synthetic

        return make_synthetic(
            config.kind, seed=config.seed, scale=config.scale, image_size=config.image_size
        )
    csv = Path(str(config.csv))
    if config.name == "csv_images":
        from dirsearch.data.csv_images import load_csv_images

        return load_csv_images(
            csv,
            Path(config.root) if config.root else csv.parent,
            target=config.target,
            image_size=config.image_size,
            cache_dir=Path(config.cache_dir) if config.cache_dir else None,
        )
    from dirsearch.data.tabular import load_tabular

    features = list(config.features) if config.features is not None else None
    return load_tabular(csv, target=config.target, features=features)
