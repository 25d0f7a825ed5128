"""The seed's "Train/Test Visualization": loss and accuracy curves per epoch, train and evaluation."""

import matplotlib

matplotlib.use("Agg")  # headless: figures are only ever written to files
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def curves_figure(history: list[dict[str, float]], eval_name: str = "test") -> Figure:
    """2x2 figure: training loss, training accuracy, `<eval_name>` loss, `<eval_name>` accuracy."""
    epochs = list(range(1, len(history) + 1))
    fig, axs = plt.subplots(2, 2, figsize=(12, 8))
    panels = [
        ("train_loss", "Training Loss"),
        ("train_acc", "Training Accuracy (%)"),
        (f"{eval_name}_loss", f"{eval_name.capitalize()} Loss"),
        (f"{eval_name}_acc", f"{eval_name.capitalize()} Accuracy (%)"),
    ]
    for ax, (key, title) in zip(axs.T.flat, panels, strict=True):
        if history and key in history[0]:
            ax.plot(epochs, [h[key] for h in history], marker="o")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def close(fig: Figure) -> None:
    plt.close(fig)
