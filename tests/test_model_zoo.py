"""The model zoo: the seed's exact 8K network, and a contract every registered model keeps."""

import pytest
import torch

from model_zoo import create_model, list_models, register_model, summarize
from model_zoo.layers import Dropout
from model_zoo.registry import UnknownModelError

# The seed's torchsummary table (S7-README.txt), row for row: layer, output shape, parameters.
SEED_TABLE = [
    ("Conv2d-1", (8, 26, 26), 72),
    ("ReLU-2", (8, 26, 26), 0),
    ("BatchNorm2d-3", (8, 26, 26), 16),
    ("Dropout-4", (8, 26, 26), 0),
    ("Conv2d-5", (14, 24, 24), 1008),
    ("ReLU-6", (14, 24, 24), 0),
    ("BatchNorm2d-7", (14, 24, 24), 28),
    ("Dropout-8", (14, 24, 24), 0),
    ("Conv2d-9", (10, 24, 24), 140),
    ("MaxPool2d-10", (10, 12, 12), 0),
    ("Conv2d-11", (14, 10, 10), 1260),
    ("ReLU-12", (14, 10, 10), 0),
    ("BatchNorm2d-13", (14, 10, 10), 28),
    ("Dropout-14", (14, 10, 10), 0),
    ("Conv2d-15", (16, 8, 8), 2016),
    ("ReLU-16", (16, 8, 8), 0),
    ("BatchNorm2d-17", (16, 8, 8), 32),
    ("Dropout-18", (16, 8, 8), 0),
    ("Conv2d-19", (20, 6, 6), 2880),
    ("ReLU-20", (20, 6, 6), 0),
    ("BatchNorm2d-21", (20, 6, 6), 40),
    ("Dropout-22", (20, 6, 6), 0),
    ("AvgPool2d-23", (20, 1, 1), 0),
    ("Conv2d-24", (16, 1, 1), 320),
    ("Conv2d-25", (10, 1, 1), 160),
]
# The seed's receptive-field table: after each 3x3 conv, the 1x1, max pool, GAP and the two FCs.
SEED_RF = {
    "Conv2d-1": 3,
    "Conv2d-5": 5,
    "Conv2d-9": 5,
    "MaxPool2d-10": 6,
    "Conv2d-11": 10,
    "Conv2d-15": 14,
    "Conv2d-19": 18,
    "AvgPool2d-23": 28,
    "Conv2d-24": 28,
    "Conv2d-25": 28,
}


def test_s7_net_has_exactly_8000_parameters():
    model = create_model("s7_net", dropout=0.05)
    assert sum(p.numel() for p in model.parameters()) == 8000
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 8
    assert all(m.bias is None and m.padding == (0, 0) for m in convs)


def test_s7_net_summary_matches_the_seed_table_row_for_row():
    summary = summarize(create_model("s7_net"))
    got = [(r.name, r.output_shape[1:], r.params) for r in summary.rows]
    assert got == SEED_TABLE
    assert summary.total_params == summary.trainable_params == 8000
    rf = {r.name: r.receptive_field for r in summary.rows if r.name in SEED_RF}
    assert rf == SEED_RF
    text = summary.to_text()
    assert "Total params: 8,000" in text and "[-1, 20, 6, 6]" in text and "Conv2d-25" in text


def test_dropout_is_an_argument():
    drops = [m.p for m in create_model("s7_net", dropout=0.13).modules() if isinstance(m, Dropout)]
    assert len(drops) == 5 and set(drops) == {0.13}


@pytest.mark.parametrize("p", [0.05, 0.3])
def test_the_cheap_dropout_has_nn_dropouts_distribution(p):
    n = 2_000_000
    torch.manual_seed(0)
    y = Dropout(p)(torch.ones(n))
    dropped = int((y == 0).sum())
    sd = (n * p * (1 - p)) ** 0.5
    assert abs(dropped - n * p) < 5 * sd  # binomial(n, p): 5 sd is a one-in-a-million miss
    assert torch.all((y == 0) | torch.isclose(y, torch.tensor(1 / (1 - p))))  # kept: scaled
    # neighbours (the two halves of one 32-bit draw) are dropped independently
    both = int(((y[0::2] == 0) & (y[1::2] == 0)).sum())
    assert abs(both - n / 2 * p * p) < 5 * (n / 2 * p * p) ** 0.5


def test_the_cheap_dropout_is_seeded_the_identity_in_eval_and_free_at_zero():
    x = torch.randn(64, 8, 5, 5, requires_grad=True)
    torch.manual_seed(3)
    a = Dropout(0.2)(x)
    torch.manual_seed(3)
    assert torch.equal(a, Dropout(0.2)(x))  # same seed, same mask
    a.sum().backward()
    assert torch.equal(x.grad, (a != 0).float() / 0.8)  # gradient through kept elements only
    assert Dropout(0.2).eval()(x) is x
    state = torch.get_rng_state()
    assert Dropout(0.0)(x) is x
    assert torch.equal(state, torch.get_rng_state())  # p = 0 draws nothing


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(UnknownModelError, match="known models: .*s7_net"):
        create_model("resnet9000")


def test_duplicate_registration_is_rejected():
    def s7_net():  # same name as the registered builder
        return torch.nn.Identity()

    with pytest.raises(ValueError, match="already registered"):
        register_model(s7_net)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_trains(name):
    torch.manual_seed(0)
    model = create_model(name)
    x = torch.randn(4, 1, 28, 28)
    out = model(x)
    assert out.shape == (4, 10)
    assert torch.isfinite(out).all()
    assert torch.allclose(out.exp().sum(1), torch.ones(4), atol=1e-5)  # log-probabilities
    out[:, 3].sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"no gradient reaches {pname}"
