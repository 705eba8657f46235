"""Block records of real-space matrices and pure operations on them."""
from .record import MATRIX_NAMES, RecordError, StructureRecord

__all__ = ["MATRIX_NAMES", "RecordError", "StructureRecord"]
