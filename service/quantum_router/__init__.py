"""Quantum Router: an LLM router that picks the model with the best quality for the cost."""

__version__ = "0.1.0"
