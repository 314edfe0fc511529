"""The package's version, in a module of its own so that setup.cfg reads it without importing the package."""

__all__ = ["__version__"]

__version__ = "0.1.0"
