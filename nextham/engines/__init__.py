"""Embedded electronic-structure engines (GPAW; a toy engine for pipeline tests)."""

from .base import Engine, EngineError, EngineInputError, EngineUnavailable, get_engine, register_engine

__all__ = ["Engine", "EngineError", "EngineInputError", "EngineUnavailable", "get_engine", "register_engine"]
