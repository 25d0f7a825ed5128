"""Model zoo: a registry of small MNIST networks behind one `create_model(name, **kwargs)` gate.

Model modules are imported explicitly below so that registration never depends on import order
elsewhere in the project.
"""

from model_zoo import s7 as _s7  # noqa: F401  (registers s7_net)
from model_zoo.registry import create_model, list_models, register_model
from model_zoo.summary import summarize

__all__ = ["create_model", "list_models", "register_model", "summarize"]
