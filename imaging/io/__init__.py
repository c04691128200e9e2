"""Files in and out: the measurement and reconstruction file contracts, and the one
atomic writer every front end uses (see docs/design.md).

New file readers go here: a module per format that returns a
:class:`imaging.measurements.Measurements` (or writes a measurement file).
"""

from .atomic import write_atomic, write_json_atomic, write_text_atomic
from .files import (
    DEFAULT_MAX_BYTES,
    EXTRAS_PREFIX,
    HDF5_SUFFIXES,
    NPZ_SUFFIXES,
    TIFF_SUFFIXES,
    FileFormatError,
    load_coil_maps,
    load_measurements,
    load_reconstruction,
    save_measurements,
    save_reconstruction,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "EXTRAS_PREFIX",
    "HDF5_SUFFIXES",
    "NPZ_SUFFIXES",
    "TIFF_SUFFIXES",
    "FileFormatError",
    "load_coil_maps",
    "load_measurements",
    "load_reconstruction",
    "save_measurements",
    "save_reconstruction",
    "write_atomic",
    "write_json_atomic",
    "write_text_atomic",
]
