"""The data a run used, as MLflow dataset inputs: the run page's and the runs table's "Datasets".

MNIST here is the four canonical IDX files, each checked against its MD5 (`harness.data.MD5`)
before anything trains. A split's digest is therefore derived from those MD5s and from how the
split was cut (hold-out size, split seed, subset size): two runs show the same digest exactly
when they saw the same images. Nothing is hashed again at run time.
"""

import hashlib
import json
from pathlib import Path

from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from harness.data import MD5, raw_dir

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def mnist_input(
    name: str, context: str, source: str, rows: int, cut: str, root: Path | str = "data"
) -> DatasetInput:
    """One split of MNIST as an MLflow dataset input.

    Args:
        name: the dataset's name in the UI (e.g. `mnist-train`).
        context: what the run used it for: `training`, `validation` or `test`.
        source: which IDX files it comes from, `train` (the 60k) or `test` (the 10k).
        rows: the number of images in the split.
        cut: how the split was taken from those files (e.g. `50000 of 60000, hold-out 10000,
            split seed 0`); part of the digest.
        root: the data root the files live under (recorded as the source).
    Returns:
        A `DatasetInput` for `RunHandle.log_inputs`.
    """
    files = {f: MD5[f] for f in _FILES[source]}
    digest = hashlib.md5(json.dumps([files, cut]).encode()).hexdigest()[:12]
    dataset = Dataset(
        name=name,
        digest=digest,
        source_type="local",
        source=json.dumps({"uri": raw_dir(root).resolve().as_uri()}),
        profile=json.dumps({"num_rows": rows, "split": cut, "md5": files}),
    )
    return DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])


def sweep_inputs(
    train_rows: int,
    val_rows: int,
    test_rows: int,
    split_seed: int = 0,
    root: Path | str = "data",
) -> list[DatasetInput]:
    """The sweep's three splits: training part and validation hold-out of the 60k training
    images (cut with `split_seed`), and the test set (`test_rows` of the 10k)."""
    held = f"hold-out of {val_rows} with split seed {split_seed}"
    return [
        mnist_input(
            "mnist-train", "training", "train", train_rows, f"{train_rows} after the {held}", root
        ),
        mnist_input("mnist-val", "validation", "train", val_rows, held, root),
        mnist_input("mnist-test", "test", "test", test_rows, f"{test_rows} of 10000", root),
    ]
