"""The package version, in a leaf module: any layer may import it without loading the
package root (``mm_align/__init__.py``), which would make an arrow run back up the layers.
Keep it equal to ``version`` in pyproject.toml (tests/test_architecture.py checks)."""

__version__ = "0.1.0"
