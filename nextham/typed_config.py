"""The base of every typed configuration section: unknown keys are errors, assignments are validated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A pydantic model that rejects unknown keys (a typo is an error, never an ignored setting)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
