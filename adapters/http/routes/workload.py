"""`/v1/workload`: workload facts the platform reports (vfolders, kernels, endpoints) over HTTP.

`POST /v1/workload/facts` takes one fact or a JSON array of them, each exactly a line of the
JSON Lines import (`{"fact": NAME, ...the action's fields...}`, parsed by
`domain.workload.importer.fact_of`), and records them as one atomic batch, the one
`record_workload_batch` action an import batch is: all land or none. A bad fact is refused
naming its index (and field); a fact the ledger refuses (a duplicate id, say) keeps the
ledger's code and status, names its index, and nothing of the request is stored.
"""

from __future__ import annotations

import collections
import functools
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from adapters.http.calls import UNTAGGED, Body, CallDep, LedgerRoute
from adapters.http.routes.common import WRITE_ERRORS
from domain.errors import Duplicate, InvalidAPIParameters, LedgerError, ObjectNotFound, VFolderHostNotAllowed
from domain.workload import RecordWorkloadBatchAction, WorkloadAction
from domain.workload.importer import FACTS, fact_of

router = APIRouter(route_class=LedgerRoute, prefix="/workload", tags=["workload"])
MAX_FACTS = 10_000  # facts in one request: one atomic append


class FactIn(BaseModel):
    """One fact: `fact` names it, the other keys are its fields (as a JSON Lines import line)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"properties": {"fact": {"enum": list(FACTS)}}})

    fact: str


class Recorded(BaseModel):
    """`recorded`: how many facts stored something; `unchanged`: how many stored nothing (a
    stats report no newer than the kernel's last); `by_fact`: how many of each kind;
    `entities`: what each was recorded on (`type:id`), in the request's order."""

    recorded: int
    unchanged: int
    by_fact: dict[str, int]
    entities: list[str]


def _facts(payload: Any) -> tuple[bool, list[Any]]:
    """The request's facts, and whether it was a batch (an array)."""
    if isinstance(payload, list):
        if not payload:
            raise InvalidAPIParameters("an empty batch: give at least one fact", field="body")
        if len(payload) > MAX_FACTS:
            raise InvalidAPIParameters(f"at most {MAX_FACTS} facts in one request", field="body")
        return True, payload
    return False, [payload]


def _where(batch: bool, index: int, field: str | None) -> str | None:
    """A fact's field as the problem names it: `[2].kernel_id` in a batch, `kernel_id` alone
    (the fact itself, when it is refused whole, is the `body`)."""
    if not batch:
        return "body" if field is None else field
    return f"[{index}]" if field is None else f"[{index}].{field}"


def _parse(payload: Any) -> tuple[bool, list[tuple[str, WorkloadAction]]]:
    batch, items = _facts(payload)
    parsed = []
    for index, item in enumerate(items):
        # The import's own rule: the item is a line's JSON as read (1e400 stays the exact
        # Decimal the body's reading made of it, which json.dumps could not write back).
        try:
            parsed.append(fact_of(item))
        except InvalidAPIParameters as exc:
            raise exc.renamed(functools.partial(_where, batch, index)) from None
    return batch, parsed


def _refused_index(exc: LedgerError, parsed: list[tuple[str, WorkloadAction]]) -> int | None:
    """The fact a refusal names: the one the batch was applying, else the one whose entity's
    id the message names (a duplicate id met at the commit); None if it names none."""
    if exc.batch_index is not None:
        return exc.batch_index
    for index, (_, action) in enumerate(parsed):
        entity_id = action.entity_id()
        if entity_id is not None and entity_id in exc.message:
            return index
    return None


@router.post(
    "/facts",
    response_model=Recorded,
    responses=WRITE_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [
                            FactIn.model_json_schema(),
                            {
                                "type": "array",
                                "items": FactIn.model_json_schema(),
                                "minItems": 1,
                                "maxItems": MAX_FACTS,  # refused past it: a client learns it here
                            },
                        ]
                    }
                }
            },
        },
        UNTAGGED: True,
    },
    summary="Record workload facts (the platform): one fact or an array, all in one atomic batch.",
)
def record_facts(call: CallDep, payload: Body) -> Response:
    batch, parsed = _parse(payload)
    counts = collections.Counter(fact for fact, _ in parsed)
    try:
        return call.command(
            call.ledger.processors.workload.record_workload_batch,
            lambda: RecordWorkloadBatchAction(actions=[action for _, action in parsed]),
            lambda result: {
                "recorded": result.recorded,
                "unchanged": result.unchanged,
                "by_fact": {fact: counts[fact] for fact in FACTS if counts[fact]},
                "entities": list(result.entity_ids),
            },
            body=payload,
        )
    except LedgerError as exc:
        index = _refused_index(exc, parsed) if batch else None
        if index is not None:
            # Named as the import names a refused line: where it is; nothing of the batch is stored.
            exc.message = f"[{index}] ({parsed[index][0]}): {exc.message} (nothing recorded)"
            if isinstance(exc, InvalidAPIParameters) or (
                isinstance(exc, ObjectNotFound | VFolderHostNotAllowed | Duplicate) and exc.field is not None
            ):
                exc.field = _where(batch, index, exc.field)
        raise
