"""What the resource routes share: paging, visibility, and every entity's history routes.

No `from __future__ import annotations` here: FastAPI reads the history routes' parameter
types at runtime, and they are local to `add_history_routes`."""

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Path, Query, Response
from pydantic import AfterValidator, BaseModel, ConfigDict

from adapters.http.calls import Call, CallDep
from adapters.http.paths import with_slashes
from adapters.http.problems import not_found, responses
from adapters.read.queries import HistoryEntry, changes_between
from adapters.read.timetravel import EntityState, absent
from domain.actions.permissions import ReadScope
from domain.catalog import EntityType
from domain.parsers import INT64_MAX
from domain.times import parse_point, parse_time

ItemT = TypeVar("ItemT")
READ_ERRORS = responses(400, 401, 404, 503)
NEXT_AFTER_HEADER = "Ledger-Next-After"
# A history page's answer: the cursor of the next page, when there is one.
_HISTORY_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Successful Response",
        "headers": {
            NEXT_AFTER_HEADER: {
                "description": "With `limit`, when more entries follow: the `after` of the next page.",
                "schema": {"type": "string"},
            }
        },
    }
}
# A read of one entity: its `ETag` (`Call.entity_response`), for a later change's If-Match.
ONE_ENTITY: dict[int | str, dict[str, Any]] = {
    **READ_ERRORS,
    200: {
        "description": "Successful Response",
        "headers": {"ETag": {"description": "Its version: a change's If-Match.", "schema": {"type": "string"}}},
    },
}
WRITE_ERRORS = responses(400, 401, 403, 404, 409, 412, 413, 422, 503)  # 413: a body past MAX_BODY_BYTES

Limit = Annotated[int | None, Query(ge=1, le=10_000, description="At most this many items.")]
# A list answers a page even when no limit is asked for: without one, a platform's
# `GET /v1/kernels` read and sent every kernel ever run (25,000: 12 MB, 4.6 s), past the
# 10,000 a limit may ask for.
DEFAULT_PAGE = 100
PageLimit = Annotated[
    int,
    Query(
        ge=1,
        le=10_000,
        description=f"At most this many items (default {DEFAULT_PAGE}); `next_after` names the next page.",
    ),
]
After = Annotated[str | None, Query(max_length=600, description="The `next_after` of the previous page.")]
MinPosition = Annotated[
    int | None,
    Query(
        ge=0,
        le=2**62,
        description="Wait (at most 5 s) until the read models have applied the event at this "
        "position (a write's `Ledger-Position`), else 503.",
    ),
]


class Exact(BaseModel):
    """A response object with exactly these fields (no others: additionalProperties false)."""

    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[ItemT]):
    """A page of items; `next_after` is the cursor of the next page (null: this is the last)."""

    items: list[ItemT]
    next_after: str | None


def page(items: list[Any], limit: int | None, cursor: Callable[[Any], str]) -> dict[str, Any]:
    """`items` (fetched with `limit + 1` when a limit is given) as a page."""
    more = limit is not None and len(items) > limit
    shown = items[:limit] if limit is not None else items
    return {"items": [_json(i) for i in shown], "next_after": cursor(shown[-1]) if more and shown else None}


def empty_page() -> dict[str, Any]:
    """The page of a list the caller may see nothing of, or whose cursor places nothing."""
    return {"items": [], "next_after": None}


def fetch_limit(limit: int | None) -> int | None:
    """What to ask the query for: one more than the page, to know whether one follows."""
    return None if limit is None else limit + 1


def _json(item: Any) -> Any:
    to_json = getattr(item, "to_json", None)
    return to_json() if callable(to_json) else item


def add_history_routes(
    router: APIRouter,
    entity_type: str,
    param: str,
    visible: Callable[[Call, str], None],
    key_of: Callable[[str], str] | None = None,
) -> None:
    """`/{param}/history`, `/{param}/state` and `/{param}/diff` for one kind of entity;
    `visible(call, id)` raises the entity's 404 for a caller who may not see it; `key_of`
    turns the path's value into the entity's key (a UUID in any case into its stored form)."""

    def normalised(raw: str) -> str:
        raw = with_slashes(raw)
        return raw if key_of is None else key_of(raw)

    Key = Annotated[str, Path(alias=param, max_length=256), AfterValidator(normalised)]

    # Each waits for `min_position` first: `visible` reads the read models (a group's
    # domain, a keypair's owner) and must see the write the caller waits for.
    def history(
        call: CallDep,
        key: Key,
        response: Response,
        limit: Limit = None,
        after: Annotated[
            int | None, Query(ge=0, le=INT64_MAX, description="The `Ledger-Next-After` of the previous page.")
        ] = None,
        newest_first: Annotated[bool, Query(description="The latest entry first (with limit: the latest).")] = False,
        min_position: MinPosition = None,
    ) -> list[dict[str, Any]]:
        call.wait_for(min_position)
        visible(call, key)
        readable = ReadableHistory(call, entity_type, key)
        entries = readable.page(after, fetch_limit(limit), newest_first)
        # A page past the last entry is empty; an entity with nothing readable is not found.
        if not entries and (after is None or not readable.page(None, 1, False)):
            raise not_found(entity_type, key)
        if limit is not None and len(entries) > limit:
            entries = entries[:limit]
            response.headers[NEXT_AFTER_HEADER] = str(entries[-1].position)
        return [e.to_json() for e in entries]

    def state(
        call: CallDep,
        key: Key,
        at: Annotated[str | None, Query(max_length=64, description="ISO 8601 time (UTC if no zone).")] = None,
        version: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,  # as `diff` and the CLI bound it
        min_position: MinPosition = None,
    ) -> dict[str, Any]:
        call.wait_for(min_position)
        visible(call, key)
        # Read and refused in the order and words of `ledger X show --at/--version`.
        moment = None if at is None else parse_time(at, "at")
        found = call.ledger.queries.state_at(entity_type, key, at=moment, version=version)
        if found is None or not _in_callers_domain(call, entity_type, found):
            raise absent(entity_type, key, at, version)
        return found.to_json()

    def diff(
        call: CallDep,
        key: Key,
        from_: Annotated[str, Query(alias="from", max_length=64, description="A version number or a time.")],
        to: Annotated[str, Query(max_length=64, description="A version number or a time.")],
        min_position: MinPosition = None,
    ) -> dict[str, dict[str, Any]]:
        call.wait_for(min_position)
        visible(call, key)
        from_version, from_at = parse_point(from_, "from")
        to_version, to_at = parse_point(to, "to")
        states = [
            call.ledger.queries.state_at(entity_type, key, at=point_at, version=point_version)
            for point_version, point_at in ((from_version, from_at), (to_version, to_at))
        ]
        if any(found is not None and not _in_callers_domain(call, entity_type, found) for found in states):
            raise not_found(entity_type, key)
        return changes_between(*states)  # `queries.diff` of the states read once

    for suffix, endpoint, model, summary in (
        (
            "history",
            history,
            list[HistoryEntry],
            "Every event of it, oldest first (or newest first): who changed what, when. With `limit`, "
            "a page: `Ledger-Next-After` names the `after` of the next.",
        ),
        ("state", state, EntityState, "It as it stood at a time or after a version."),
        ("diff", diff, dict[str, dict[str, Any]], "The fields that differ between two versions or times."),
    ):
        router.add_api_route(
            f"/{{{param}}}/{suffix}",
            endpoint,
            methods=["GET"],
            response_model=model,
            responses={**READ_ERRORS, **_HISTORY_ANSWER} if suffix == "history" else READ_ERRORS,
            summary=summary,
            name=f"{entity_type}_{suffix}",
        )


def _domain_bound(call: Call, entity_type: str) -> bool:
    """Whether the caller reads this kind's past only where it was in their domain (a
    domain's own stream is the domain wherever its past goes)."""
    return call.caller.scope(entity_type) is not ReadScope.ALL and entity_type != EntityType.DOMAIN


def _in_callers_domain(call: Call, entity_type: str, state: EntityState) -> bool:
    """Whether a past state is of an incarnation the caller may read. `visible` judges the
    entity as it is now; an id deleted and created again in another domain has a past a
    domain-bound caller must not read (an admin of the new owner's domain read the former
    owner's keypair, or the former user's email and name), and one created again for
    another owner has a past its new owner must not read (a user read the keypair of the
    user who held its access key before them)."""
    return _fields_in_callers_domain(call, entity_type, state.fields)


def _fields_in_callers_domain(call: Call, entity_type: str, fields: Mapping[str, Any]) -> bool:
    """`_in_callers_domain` of a state's fields (only `_JUDGED` are read)."""
    if not _domain_bound(call, entity_type):
        return True
    domain = fields.get("domain_name")
    if domain is not None and domain != call.caller.domain_name:
        return False
    owner = fields.get("user_id")
    return call.caller.scope(entity_type) is not ReadScope.OWN or owner is None or str(owner) == call.caller.user_id


_JUDGED = ("domain_name", "user_id")  # the fields `_fields_in_callers_domain` reads
_CREATIONS = ("Created", "Recreated")


class ReadableHistory:
    """An entity's history as the caller may read it: the entries whose resulting state
    passes `_in_callers_domain`, as `state?version=` judges that state. Judged entry by
    entry, not once per incarnation: a group moved to another domain keeps its incarnation,
    and its new domain's admin, who reads the group and its state since the move, was told
    its history was not found (judged on the state it was created in)."""

    def __init__(self, call: Call, entity_type: str, key: str) -> None:
        self._call, self._entity_type, self._key = call, entity_type, key
        # The judged fields in force after each version met, and what each entry met
        # changed (did it begin an incarnation, its changes): a neighbour's state is then
        # derived from the entry's own changes, where a replay per entry would read the
        # stream again for each of a long history's entries.
        self._after: dict[int, dict[str, Any] | None] = {}
        self._met: dict[int, tuple[bool, dict[str, dict[str, Any]]]] = {}

    def page(self, after: int | None, limit: int | None, newest_first: bool) -> list[HistoryEntry]:
        """Up to `limit` readable entries after the cursor, reading on past entries the
        caller may not read (a page never stops short while more readable ones follow)."""
        queries = self._call.ledger.queries
        kept: list[HistoryEntry] = []
        while True:
            rows = queries.history(self._entity_type, self._key, after=after, limit=limit, newest_first=newest_first)
            kept += (row for row in rows if self._may_read(row))
            if limit is None or len(kept) >= limit or len(rows) < limit:
                return kept[:limit]
            after = rows[-1].position

    def _may_read(self, entry: HistoryEntry) -> bool:
        if not _domain_bound(self._call, self._entity_type):
            return True
        fields = self._fields_after(entry)
        return fields is not None and _fields_in_callers_domain(self._call, self._entity_type, fields)

    def _fields_after(self, entry: HistoryEntry) -> dict[str, Any] | None:
        """The judged fields of the state `entry` leaves (None: no state, as before any
        creation): from its own changes and a neighbour already judged, else replayed."""
        version, began = entry.version, entry.event in _CREATIONS
        self._met[version] = (began, entry.changes)
        if version in self._after:
            return self._after[version]
        before, later = self._after.get(version - 1), self._met.get(version + 1)
        if began:  # a creation lists every field it sets
            fields: dict[str, Any] | None = {f: c["new"] for f, c in entry.changes.items() if f in _JUDGED}
        elif before is not None:
            fields = {**before, **{f: c["new"] for f, c in entry.changes.items() if f in _JUDGED}}
        elif later is not None and not later[0] and (next_fields := self._after.get(version + 1)) is not None:
            fields = {**next_fields, **{f: c["old"] for f, c in later[1].items() if f in _JUDGED}}
        else:
            state = self._call.ledger.queries.state_at(self._entity_type, self._key, version=version)
            fields = None if state is None else {f: state.fields.get(f) for f in _JUDGED}
        self._after[version] = fields
        return fields
