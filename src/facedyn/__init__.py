"""facedyn: is identity in the dynamics of facial expressions?

A reproducible pipeline (see docs/pipeline.md): videos -> 68 landmarks -> per-frame FLAME
expression/jaw/pose -> drift-to-noise ratio and identification from dynamics alone.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("facedyn")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = ["__version__"]
