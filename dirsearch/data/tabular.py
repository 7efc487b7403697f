"""The ``tabular`` dataset: a numeric CSV of features, a target column and a split column.

The whole table fits in memory as one tensor, so batches are plain index lookups and there is
nothing to augment. The dataset keeps the features as the CSV has them (float64, as parsed); the
batch transform standardises them with statistics of the TRAINING split only, so validation and
test rows never leak into the scaling, and a served model that carries the transform's module
(``FeatureTransform.serving``) takes the same raw rows a user has.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

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


def standardised(inputs: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / scale`` computed in float64 on the raw values, as float32 model input: the
    same arithmetic in training, evaluation and serving (float32 raw values would lose digits
    of features with a large offset before they are centred)."""
    device = inputs.device
    centred = inputs.to(torch.float64) - mean.to(device)
    return (centred / scale.to(device)).to(torch.float32)


class FeatureInput(nn.Module):
    """Raw float64 feature rows ``(N, F)`` -> float32 model input: the training split's mean and
    scale as buffers, so an exported model carries its standardisation with its weights."""

    input_dtype = torch.float64
    """What a served model takes: the numbers of a CSV or a DataFrame, as parsed."""

    def __init__(self, mean: np.ndarray | None, scale: np.ndarray | None) -> None:
        super().__init__()
        self.standardise = mean is not None and scale is not None
        if mean is not None and scale is not None:
            self.register_buffer("mean", torch.from_numpy(np.asarray(mean, dtype=np.float64)))
            self.register_buffer("scale", torch.from_numpy(np.asarray(scale, dtype=np.float64)))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.standardise:
            return inputs.to(torch.float32)
        return standardised(inputs, self.mean, self.scale)


class FeatureTransform:
    """Feature rows -> float32 model input, the same for training and evaluation (no
    augmentation): standardised with the training split's ``mean`` and ``scale`` when given (a
    CSV's raw features), else only cast (the synthetic features come roughly standardised)."""

    def __init__(self, mean: np.ndarray | None = None, scale: np.ndarray | None = None) -> None:
        self._input = FeatureInput(mean, scale)

    def train(self, inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self._input(inputs)

    def eval(self, inputs: torch.Tensor) -> torch.Tensor:
        return self._input(inputs)

    def serving(self) -> FeatureInput:
        """The module a served model applies to raw feature rows before the network."""
        return self._input


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
    mean, scale = _statistics(inputs[splits == "train"])
    bundle = {name: _split(inputs[splits == name], targets[splits == name]) for name in SPLIT_NAMES}
    return DataBundle(
        **bundle, input_shape=(len(columns),), transform=FeatureTransform(mean, scale)
    )


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


def _statistics(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every feature's training mean and scale: standardising gives zero mean and unit standard
    deviation on the training split.

    A constant training feature (std 0) gets scale 1, so it is only centred: dividing by zero
    would turn it into NaN, and it carries no information the model could lose.
    """
    std = train.std(axis=0)
    return train.mean(axis=0), np.where(std > 0, std, 1.0)


def _split(inputs: np.ndarray, targets: np.ndarray) -> Split:
    """Raw features stay float64 (standardised per batch), targets become float32."""
    dataset = TensorBatchDataset(
        torch.from_numpy(inputs.astype(np.float64)), torch.from_numpy(targets.astype(np.float32))
    )
    return Split(dataset=dataset, targets=targets)
