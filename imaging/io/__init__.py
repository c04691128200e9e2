"""Files in and out: the measurement and reconstruction file contracts, and the one
atomic writer every front end uses (see docs/design.md).

New file readers go here: a module per format that returns a
:class:`imaging.measurements.Measurements` (or writes a measurement file). Raw CT
acquisitions (Data Exchange, NXtomo, TIFF stacks: :mod:`.dxchange`, :mod:`.nxtomo`,
:mod:`.tiffstack`) share the pre-processing of :mod:`.raw`; :func:`import_raw` reads one
into measurements.
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
from .importer import ImportResult, import_raw
from .stored import StoredFrames, open_ground_truth
from .raw import ImportReport, RawDataError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "EXTRAS_PREFIX",
    "HDF5_SUFFIXES",
    "NPZ_SUFFIXES",
    "TIFF_SUFFIXES",
    "FileFormatError",
    "ImportReport",
    "ImportResult",
    "RawDataError",
    "StoredFrames",
    "import_raw",
    "load_coil_maps",
    "load_measurements",
    "load_reconstruction",
    "open_ground_truth",
    "save_measurements",
    "save_reconstruction",
    "write_atomic",
    "write_json_atomic",
    "write_text_atomic",
]
