"""The wire-format JSON Schemas in `schemas/`, loaded and checked once per process."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Literal

from jsonschema import Draft202012Validator

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"

SchemaName = Literal["asr-frame", "control-messages"]


@cache
def validator(name: SchemaName) -> Draft202012Validator:
    """A validator for `schemas/<name>.schema.json`; raises if the schema itself is invalid."""
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)
