"""Portway: an LLM gateway built from plugins."""

from portway.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
