"""The seed's claims (../shared/seed/SETTINGS.md), each one plain function over the logged runs.

A *setting* is an experiment of experiments.yaml plus dotted overrides, exactly as on the command
line; every setting is trained on every seed of the `findings:` section. A claim function reads
top to bottom: the seed's words and numbers, the settings and metrics it shows, and the
comparisons whose 95% intervals decide it (`Judge.threshold`, `Judge.paired`, `Judge.best`).
A new claim is a new function here, listed in `CLAIMS`.
"""

from dataclasses import dataclass

from findings.verdicts import ClaimResult, Judge


@dataclass(frozen=True)
class Setting:
    """One training setting: `experiment` from experiments.yaml, then `overrides` (key=value)."""

    experiment: str
    overrides: tuple[str, ...] = ()


SETTINGS = {
    "file1": Setting("s7_file1"),
    "file2": Setting("s7_file2"),
    "file3": Setting("s7_file3"),  # batch 128
    "file3_no_aug": Setting("s7_file3", ("augment.enabled=false",)),
    "file3_step4": Setting("s7_file3", ("scheduler.step_size=4",)),
    "file3_bs32": Setting("s7_file3", ("batch_size=32",)),
    "file3_bs64": Setting("s7_file3", ("batch_size=64",)),
    "file3_bs256": Setting("s7_file3", ("batch_size=256",)),
    "file3_bs512": Setting("s7_file3", ("batch_size=512",)),
}
BATCH_SIZES = ["file3_bs32", "file3_bs64", "file3", "file3_bs256", "file3_bs512"]
GAP = ["best_train_acc", "best_test_acc", "final_test_acc", "gap"]
TEST = ["best_test_acc", "final_test_acc"]


def file1_overfits(j: Judge) -> ClaimResult:
    return j.claim(
        "File1's setup overfits: best train 99.59% vs best test 99.27%.",
        reported={"file1": {"best_train_acc": 99.59, "best_test_acc": 99.27}},
        settings=["file1"],
        metrics=GAP,
        parts={"train_above_test": j.threshold("gap", "file1", ">", 0)},
    )


def file2_reduces_overfitting(j: Judge) -> ClaimResult:
    return j.claim(
        "Dropout 0.05 plus StepLR(4, 0.1) reduces overfitting (train accuracy below test "
        "accuracy) and holds about 99.3% test accuracy.",
        note="Three parts: File2's gap is below zero, below File1's gap (paired), and its best "
        'test accuracy is at least 99.25% ("about 99.3%" read as: rounds to 99.3 or more).',
        reported={
            "file2": {"best_train_acc": 98.54, "best_test_acc": 99.38},
            "file1": {"best_train_acc": 99.59, "best_test_acc": 99.27},
        },
        settings=["file2", "file1"],
        metrics=GAP,
        parts={
            "train_below_test": j.threshold("gap", "file2", "<", 0),
            "less_gap_than_file1": j.paired("gap", "file2", "file1", "<"),
            "holds_about_99_3": j.threshold("best_test_acc", "file2", ">=", 99.25),
        },
    )


def augmentation_helps(j: Judge) -> ClaimResult:
    return j.claim(
        "Augmentation (rotation, translation, scaling) improves test accuracy.",
        note="Tested with everything else fixed: File3 with and without augmentation. (The seed "
        "compared File2 and File3, which also differ in the StepLR step.)",
        reported={"file3": {"best_test_acc": 99.42}},
        settings=["file3", "file3_no_aug"],
        metrics=[*TEST, "gap"],
        parts={"aug_beats_no_aug": j.paired("best_test_acc", "file3", "file3_no_aug", ">")},
    )


def batch_128_sweet_spot(j: Judge) -> ClaimResult:
    return j.claim(
        "Batch size 128 is the sweet spot: 512 generalises worse, and below 128 test accuracy "
        "degrades.",
        note="Batch 32, 64, 128, 256 and 512 at File3's other settings; 128 must beat each of "
        "the others in best test accuracy, seed by seed.",
        settings=BATCH_SIZES,
        metrics=[*TEST, "gap"],
        parts={
            "bs128_best": j.best(
                "best_test_acc", "file3", ["file3_bs32", "file3_bs64", "file3_bs256", "file3_bs512"]
            )
        },
    )


def step8_beats_step4_with_aug(j: Judge) -> ClaimResult:
    return j.claim(
        "StepLR at 8 epochs works better than at 4 once augmentation is on.",
        reported={"file3": {"best_test_acc": 99.42}},
        settings=["file3", "file3_step4"],
        metrics=TEST,
        parts={"step8_beats_step4": j.paired("best_test_acc", "file3", "file3_step4", ">")},
    )


def file3_reaches_99_4(j: Judge) -> ClaimResult:
    return j.claim(
        "With File3's settings the network reaches 99.4% test accuracy consistently, in 15 "
        "epochs, with 8,000 parameters.",
        note='"Consistently" read as: the 95% interval of the mean best test accuracy lies at or '
        "above 99.4%. The epochs are in the settings table below.",
        reported={"file3": {"best_test_acc": 99.42, "final_test_acc": 99.42, "n_params": 8000}},
        settings=["file3"],
        metrics=[*TEST, "n_params"],
        parts={
            "reaches_99_4": j.threshold("best_test_acc", "file3", ">=", 99.4),
            "at_most_8000_params": j.threshold("n_params", "file3", "<=", 8000),
        },
    )


CLAIMS = [
    file1_overfits,
    file2_reduces_overfitting,
    augmentation_helps,
    batch_128_sweet_spot,
    step8_beats_step4_with_aug,
    file3_reaches_99_4,
]


@dataclass(frozen=True)
class Figure:
    """`interval`: a per-run metric per setting, each seed and the mean with its 95% interval
    (x labelled by config key `x` when given); `curves`: a per-epoch metric, mean and 95% band."""

    kind: str
    title: str
    metric: str
    settings: list[str]
    x: str | None = None


FIGURES = {
    "batch_size": Figure(
        "interval",
        "Batch size vs best test accuracy (File3's other settings)",
        "best_test_acc",
        BATCH_SIZES,
        x="batch_size",
    ),
    "test_curves": Figure(
        "curves",
        "Test accuracy per epoch, the seed's three trials",
        "test_acc",
        ["file1", "file2", "file3"],
    ),
    "gap": Figure(
        "interval",
        "Best train minus best test accuracy per setting",
        "gap",
        ["file1", "file2", "file3", "file3_no_aug", "file3_step4"],
    ),
}
