"""Harness: validated configuration, offline MNIST, the device-agnostic trainer and the CLI."""
