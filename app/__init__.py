"""LLM Playground: a desktop playground for remote and in-process language models."""

__version__ = "0.1.0"
