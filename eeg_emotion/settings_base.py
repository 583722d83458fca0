"""The base of every settings section: unknown keys and bad values are refused.

A leaf module (pydantic only): `config` builds its sections on it, and the readers' options
(`data.source_options`) too, without either importing the other.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
