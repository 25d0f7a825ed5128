"""The core: validated configuration, offline MNIST, batch augmentation, the device-agnostic
trainer and statistics over seeds. Imports neither optuna nor mlflow (see tests/test_layers.py)."""
