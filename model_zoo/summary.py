"""A torchsummary-style table (layer, output shape, parameters) plus each layer's receptive field.

The text form lines up row for row with the table in the seed's README, so it can be logged
beside every run and diffed against the seed.
"""

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LayerRow:
    """One leaf layer: `Conv2d-1`, output shape with batch as -1, parameter count, receptive field."""

    name: str
    output_shape: tuple[int, ...]
    params: int
    receptive_field: int


@dataclass(frozen=True)
class Summary:
    rows: tuple[LayerRow, ...]
    total_params: int
    trainable_params: int

    def to_text(self) -> str:
        """Render as the seed's torchsummary table, with a receptive-field column added."""
        line, rule = "-" * 80, "=" * 80
        out = [line, f"{'Layer (type)':>25}  {'Output Shape':>25} {'Param #':>15}  {'RF':>6}", rule]
        for r in self.rows:
            shape = "[" + ", ".join(str(d) for d in r.output_shape) + "]"
            out.append(f"{r.name:>25}  {shape:>25} {r.params:>15,}  {r.receptive_field:>6}")
        out += [
            rule,
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.total_params - self.trainable_params:,}",
            line,
        ]
        return "\n".join(out)


def _kernel_stride(m: nn.Module) -> tuple[int, int]:
    """Square kernel size and stride of a spatial layer; (1, 1) for pointwise layers."""
    if isinstance(m, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
        k, s = m.kernel_size, m.stride
        k = k[0] if isinstance(k, tuple) else k
        s = s[0] if isinstance(s, tuple) else s
        return int(k), int(s if s is not None else k)
    return 1, 1


def summarize(model: nn.Module, input_size: tuple[int, ...] = (1, 28, 28)) -> Summary:
    """Run one dummy forward pass and record every leaf module in call order.

    Args:
        model: any `nn.Module` built from leaf layers applied in sequence.
        input_size: one sample's shape, without the batch dimension.
    Returns:
        The `Summary`; receptive fields assume the leaves form a chain (true for the zoo's models).
    """
    rows: list[LayerRow] = []
    counts: dict[str, int] = {}
    state = {"rf": 1, "jump": 1}

    def hook(m: nn.Module, _inp, out: torch.Tensor) -> None:
        kind = type(m).__name__
        counts[kind] = counts.get(kind, 0) + 1
        k, s = _kernel_stride(m)
        state["rf"] += (k - 1) * state["jump"]
        state["jump"] *= s
        rows.append(
            LayerRow(
                name=f"{kind}-{len(rows) + 1}",
                output_shape=(-1, *out.shape[1:]),
                params=sum(p.numel() for p in m.parameters(recurse=False)),
                receptive_field=state["rf"],
            )
        )

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(2, *input_size, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Summary(rows=tuple(rows), total_params=total, trainable_params=trainable)
