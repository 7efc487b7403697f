"""The tabular dataset and the CSV reading checks it shares with the other dataset kinds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dirsearch.data.base import keep_batch
from dirsearch.data.csv_table import read_table
from dirsearch.data.tabular import load_tabular
from dirsearch.errors import DataError

# Train rows: a = 1, 3 (mean 2, std 1); b constant 5 (std 0: only centred); c = 0, 4 (mean 2,
# std 2).
TABLE = """a,b,y,split,c
1,5,10,train,0
3,5,20,train,4
5,6,30,val,2
-1,4,40.5,test,8
"""


def write(tmp_path: Path, text: str, name: str = "table.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def model_input(bundle, split: str, indices: list[int]) -> list[list[float]]:
    """What the model sees of a split's rows: the raw rows through the evaluation transform."""
    inputs = getattr(bundle, split).dataset.__getitems__(indices)[0]
    output = bundle.transform.eval(inputs)
    assert output.dtype == torch.float32
    return output.tolist()


def test_standardised_with_training_statistics(tmp_path: Path) -> None:
    bundle = load_tabular(write(tmp_path, TABLE), target="y")
    assert bundle.input_shape == (3,)
    train_x, train_y = bundle.train.dataset.__getitems__([0, 1])
    # The dataset keeps the CSV's numbers; the batch transform standardises them.
    assert train_x.dtype == torch.float64 and train_y.dtype == torch.float32
    assert train_x.tolist() == [[1.0, 5.0, 0.0], [3.0, 5.0, 4.0]]
    assert model_input(bundle, "train", [0, 1]) == [[-1.0, 0.0, -1.0], [1.0, 0.0, 1.0]]
    assert train_y.tolist() == [10.0, 20.0]
    assert model_input(bundle, "val", [0]) == [[3.0, 1.0, 0.0]]
    assert model_input(bundle, "test", [0]) == [[-3.0, -1.0, 3.0]]
    # The served model's preprocessing is the same module (training statistics as buffers).
    serving = bundle.transform.serving()
    assert serving.input_dtype == torch.float64
    assert serving.mean.tolist() == [2.0, 5.0, 2.0] and serving.scale.tolist() == [1.0, 1.0, 2.0]
    assert bundle.train.targets.dtype == np.float64
    assert bundle.test.targets.tolist() == [40.5]
    assert [len(bundle.train.dataset), len(bundle.val.dataset), len(bundle.test.dataset)] == [
        2,
        1,
        1,
    ]


def test_explicit_features_keep_their_order(tmp_path: Path) -> None:
    bundle = load_tabular(write(tmp_path, TABLE), target="y", features=["c", "a"])
    assert bundle.input_shape == (2,)
    assert model_input(bundle, "val", [0]) == [[0.0, 3.0]]


def test_batches_through_a_dataloader_and_the_same_transform_in_training(tmp_path: Path) -> None:
    rows = "".join(
        f"{i},{i * i},{'train' if i < 6 else 'val' if i < 8 else 'test'}\n" for i in range(10)
    )
    bundle = load_tabular(write(tmp_path, "x,y,split\n" + rows), target="y")
    loader = DataLoader(bundle.train.dataset, batch_size=4, collate_fn=keep_batch)
    batches = list(loader)
    assert [len(targets) for _, targets in batches] == [4, 2]
    assert batches[0][1].tolist() == [0.0, 1.0, 4.0, 9.0]
    inputs = torch.tensor([[2.5], [2.5 + 35**0.5 / 12**0.5]], dtype=torch.float64)  # x: 0..5
    generator = torch.Generator().manual_seed(0)
    for output in (bundle.transform.train(inputs, generator), bundle.transform.eval(inputs)):
        assert output.dtype == torch.float32
        assert output.tolist() == [[0.0], [1.0]]  # no augmentation: train is eval


def test_custom_split_column(tmp_path: Path) -> None:
    text = "x,y,fold\n1,1,train\n2,2,val\n3,3,test\n"
    bundle = load_tabular(write(tmp_path, text), target="y", split_column="fold")
    assert bundle.input_shape == (1,)


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        (TABLE, {"target": "age"}, r"no column 'age'; available columns: a, b, y, split, c"),
        (TABLE, {"target": "y", "split_column": "fold"}, r"no column 'fold'; available columns"),
        (TABLE, {"target": "y", "features": ["a", "z"]}, r"no column 'z'"),
        (
            TABLE,
            {"target": "y", "features": ["a", "y"]},
            r"column 'y' is the target, not a feature",
        ),
        (TABLE, {"target": "y", "features": ["split"]}, r"'split' is the split column"),
        (TABLE, {"target": "y", "features": ["a", "a"]}, r"'a' is listed twice"),
        (TABLE, {"target": "y", "features": []}, r"feature list is empty"),
        ("y,split\n1,train\n", {"target": "y"}, r"no feature columns besides 'y' and 'split'"),
        (
            TABLE.replace("5,6,30", "5,six,30"),
            {"target": "y"},
            r"row 4, column 'b': 'six' is not a number",
        ),
        (
            TABLE.replace("40.5", "nan"),
            {"target": "y"},
            r"row 5, column 'y': 'nan' is not a finite",
        ),
        (
            TABLE.replace("-1,4", "inf,4"),
            {"target": "y"},
            r"row 5, column 'a': 'inf' is not a finite",
        ),
        (TABLE.replace("-1,4", ",4"), {"target": "y"}, r"row 5, column 'a': '' is not a number"),
        (
            TABLE.replace("val", "valid"),
            {"target": "y"},
            r"row 4, column 'split': unknown split 'valid'; allowed: train, val, test",
        ),
        (
            TABLE.replace("test", "train"),
            {"target": "y"},
            r"split 'test' is empty \(column 'split'\)",
        ),
        ("a,y,split\n", {"target": "y"}, r"no data rows below the header"),
        ("a,y,split\n1,2,train\n1,2\n", {"target": "y"}, r"row 3 has 2 fields; the header has 3"),
        ("a,y,a\n1,2,3\n", {"target": "y"}, r"header names column 'a' twice"),
        ("a,,split\n1,2,3\n", {"target": "y"}, r"header column 2 has no name"),
        ("", {"target": "y"}, r"empty file"),
    ],
)
def test_bad_tables_give_one_line_errors(
    tmp_path: Path, text: str, kwargs: dict[str, object], message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=message) as error:
        load_tabular(path, **kwargs)
    assert "\n" not in str(error.value)
    assert str(error.value).startswith(str(path))


def test_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing\.csv: CSV file not found"):
        load_tabular(tmp_path / "missing.csv", target="y")
    (tmp_path / "binary.csv").write_bytes(b"a,y,split\n\xff\xfe,1,train\n")
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        load_tabular(tmp_path / "binary.csv", target="y")


def test_read_table_bom_spaces_and_blank_lines_keep_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes("\ufeffx , y\n1,2\n\n3,4\n".encode())
    table = read_table(path)
    assert table.header == ("x", "y")
    assert table.rows == [["1", "2"], ["3", "4"]]
    assert table.row_numbers == [2, 4]
    assert table.where(1, "y") == f"{path}: row 4, column 'y'"
