"""JSON-schema shorthands shared by the modules that own a piece of the ``params.yaml`` schema
(:mod:`animegen.config.schema` for the stage sections, :mod:`animegen.models.registry` for each model
family's ``net`` and ``sample`` blocks).  Plain data: importing this module loads nothing else."""

from __future__ import annotations


def obj(properties: dict, required: list[str] | None = None) -> dict:
    """A mapping with exactly these keys (all required unless ``required`` says otherwise)."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


INT = {"type": "integer"}
POS_INT = {"type": "integer", "minimum": 1}
NONNEG_INT = {"type": "integer", "minimum": 0}
NUM = {"type": "number"}
POS_NUM = {"type": "number", "exclusiveMinimum": 0}
NONNEG_NUM = {"type": "number", "minimum": 0}
BOOL = {"type": "boolean"}
STR = {"type": "string", "minLength": 1}
OPT_STR = {"type": ["string", "null"]}
UNIT = {"type": "number", "minimum": 0, "maximum": 1}
BETAS = {"type": "array", "items": UNIT, "minItems": 2, "maxItems": 2}  # Adam's (beta1, beta2)
