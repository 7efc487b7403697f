"""The ``tabular`` dataset: a numeric CSV of features, a target column and a split column.

The whole table fits in memory as one float32 tensor, so batches are plain index lookups and
there is nothing to augment. Features are standardised with statistics of the TRAINING split
only, so validation and test rows never leak into the scaling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dirsearch.data.base import BatchDataset, DataBundle, Split
from dirsearch.data.csv_table import (
    SPLIT_NAMES,
    Table,
    parse_numbers,
    parse_splits,
    read_table,
    require_columns,
    require_rows,
)
from dirsearch.errors import DataError


class TensorBatchDataset(BatchDataset):
    """Rows of in-memory tensors; a batch is one indexing operation."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.inputs = inputs
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return self.inputs[index], self.targets[index]


class FeatureTransform:
    """Feature vectors are already standardised: training and evaluation only ensure float32."""

    def train(self, inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return inputs.to(torch.float32)

    def eval(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.to(torch.float32)


def load_tabular(
    csv: Path, *, target: str, features: list[str] | None = None, split_column: str = "split"
) -> DataBundle:
    """Load ``csv`` as three DIR splits of float32 feature vectors and float32 targets.

    ``features`` defaults to every column other than ``target`` and ``split_column``.
    """
    table = read_table(csv)
    require_rows(table)
    require_columns(table, [target, split_column])
    columns = _feature_columns(table, target, split_column, features)
    inputs = np.stack([parse_numbers(table, column) for column in columns], axis=1)
    targets = parse_numbers(table, target)
    splits = parse_splits(table, split_column)
    inputs = _standardise(inputs, inputs[splits == "train"])
    bundle = {name: _split(inputs[splits == name], targets[splits == name]) for name in SPLIT_NAMES}
    return DataBundle(**bundle, input_shape=(len(columns),), transform=FeatureTransform())


def _feature_columns(
    table: Table, target: str, split_column: str, features: list[str] | None
) -> list[str]:
    """The chosen feature columns, checked to exist, be distinct and exclude target and split."""
    if features is None:
        columns = [name for name in table.header if name not in (target, split_column)]
        if not columns:
            raise DataError(
                f"{table.path}: no feature columns besides '{target}' and '{split_column}'"
            )
        return columns
    if not features:
        raise DataError(f"{table.path}: the feature list is empty; name at least one column")
    require_columns(table, features)
    for position, name in enumerate(features):
        if name in (target, split_column):
            role = "target" if name == target else "split column"
            raise DataError(f"{table.path}: column '{name}' is the {role}, not a feature")
        if features.index(name) != position:
            raise DataError(f"{table.path}: feature column '{name}' is listed twice")
    return list(features)


def _standardise(inputs: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Scale every feature to the training split's zero mean and unit standard deviation.

    A constant training feature (std 0) is only centred: dividing by zero would turn it into
    NaN, and it carries no information the model could lose.
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    return (inputs - mean) / np.where(std > 0, std, 1.0)


def _split(inputs: np.ndarray, targets: np.ndarray) -> Split:
    dataset = TensorBatchDataset(
        torch.from_numpy(inputs.astype(np.float32)), torch.from_numpy(targets.astype(np.float32))
    )
    return Split(dataset=dataset, targets=targets)
