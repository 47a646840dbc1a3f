"""reportctl: reports as code.

The public surface is small on purpose; everything else is private to the package.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
