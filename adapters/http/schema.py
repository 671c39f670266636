"""OpenAPI schemas of the request bodies, generated from the domain's own input models.

Request bodies are validated by the domain models themselves (their refusals are domain
errors naming the field), so a route takes the raw JSON and this module only describes it:
the value types the models parse with their own parsers (slots, host permissions, the
left-alone-or-set states of a modifier) are given their JSON shapes here.
"""

from __future__ import annotations

import warnings
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, PydanticJsonSchemaWarning
from pydantic_core import core_schema

from domain.hosts import VFolderHostPermissionMap
from domain.slots import ResourceSlot
from domain.values import OptionalState, TriState

SLOTS: JsonSchemaValue = {
    "type": "object",
    "description": "Slot name (cpu, mem, cuda.device, ...) to quantity: a number, or a string like '4g' or 'inf'.",
    "additionalProperties": {"anyOf": [{"type": "number"}, {"type": "string", "maxLength": 64}]},
}
HOSTS: JsonSchemaValue = {
    "type": "object",
    "description": "vfolder host name to the permissions granted there.",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}
_KNOWN: dict[type, JsonSchemaValue] = {ResourceSlot: SLOTS, VFolderHostPermissionMap: HOSTS}

components: dict[str, JsonSchemaValue] = {}  # every model a route described, by name


class _LedgerSchema(GenerateJsonSchema):
    def is_instance_schema(self, schema: core_schema.IsInstanceSchema) -> JsonSchemaValue:
        cls = schema["cls"]
        return dict(_KNOWN.get(cls, {}))  # a modifier's state: shaped from its creator below

    def bytes_schema(self, schema: core_schema.BytesSchema) -> JsonSchemaValue:
        return {"type": "string", "contentEncoding": "base64", "description": "The bytes, base64."}


def model_schema(model: type[BaseModel], like: type[BaseModel] | None = None) -> JsonSchemaValue:
    """`model`'s JSON schema; a modifier's fields (states the generic schema cannot see into)
    take the schema of the same field of `like` (its creator), nullable where the field may
    be set to null."""
    with warnings.catch_warnings():
        # Defaults of the parsed value types are not JSON: left out, as pydantic says.
        warnings.simplefilter("ignore", PydanticJsonSchemaWarning)
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", schema_generator=_LedgerSchema)
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    if like is not None:
        reference = model_schema(like)["properties"]
        for name, field in model.model_fields.items():
            prop = schema["properties"].get(name)
            if prop is None or name not in reference or not _is_state(field.annotation):
                continue
            shaped = dict(reference[name])
            shaped.pop("default", None)
            if _nullable(field.annotation) and "anyOf" not in shaped:
                shaped = {"anyOf": [shaped, {"type": "null"}]}
            schema["properties"][name] = {**shaped, **{k: v for k, v in prop.items() if k == "title"}}
    return schema


def _is_state(annotation: Any) -> bool:
    origin = getattr(annotation, "__origin__", annotation)
    return isinstance(origin, type) and issubclass(origin, OptionalState | TriState)


def _nullable(annotation: Any) -> bool:
    origin = getattr(annotation, "__origin__", annotation)
    return isinstance(origin, type) and issubclass(origin, TriState)


def body(model: type[BaseModel], *, like: type[BaseModel] | None = None, batch: bool = False) -> dict[str, Any]:
    """A route's `openapi_extra`: its JSON request body is `model` (or a list of them)."""
    name = model.__name__
    components[name] = model_schema(model, like)
    ref: JsonSchemaValue = {"$ref": f"#/components/schemas/{name}"}
    schema = {"anyOf": [ref, {"type": "array", "items": ref, "minItems": 1}]} if batch else ref
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
