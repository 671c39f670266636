"""The authoring API of read models: a projection is a name, a version, its SQLAlchemy
Core tables and a handler per event class.

Handlers are declared one way: `@on(EventClass, ...)` on a method, and, for the classes
known only when the projection is built (every event of some aggregates), the explicit
mapping `computed_handlers` returns; an `@on` handler wins over a computed one. A
`BatchProjection` folds a whole batch in `apply_batch`: every handler it declares routes
there.

Names. `stable_name` names the read model across its versions: the class's `name`, plus
whatever else tells two apart (the usage model's time zone: `usage_utc`); `versioned_name`
names one version (`usage_v4_utc`) and its tables (`{versioned_name}_{table}`);
`storage_name` is the name its tables and tracking row are stored under (the versioned
name, or that of a forced rebuild in progress).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

Handler = Callable[[Connection, Any, int], None]
Batch = Sequence[tuple[int, Any]]  # (position, event), positions ascending
GENERATIONS = "ledger_generations"  # MetaData.info key: {versioned name: forced rebuild number}


def on(*event_classes: type) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Marks a projection method as the handler of the given event classes (on a
    `BatchProjection`, marks `apply_batch` as the one handler of all of them)."""

    def mark(method: Callable[..., None]) -> Callable[..., None]:
        method._handles = event_classes  # type: ignore[attr-defined]
        return method

    return mark


def build_storage_name(versioned_name: str, generation: int) -> str:
    """What forced rebuild `generation` of a version is stored under (`Projection.storage_name`)."""
    return f"{versioned_name}r{generation}"


class Projection:
    name: ClassVar[str]
    version: ClassVar[int] = 1
    # The relative cost of applying one event, by which a rebuild shares projections out
    # between processes (`split`); bench/rebuild.py prints each projection's time.
    cost: ClassVar[float] = 1.0

    def __init__(self, metadata: sa.MetaData) -> None:
        self.metadata = metadata
        self.tables: list[sa.Table] = []  # its own, in the order made (metadata may hold others)
        self.handlers: dict[type, Handler] = dict(self.computed_handlers())
        for attr in dir(type(self)):
            for event_class in getattr(getattr(type(self), attr), "_handles", ()):
                self.handlers[event_class] = getattr(self, attr)

    def computed_handlers(self) -> Mapping[type, Handler]:
        """The handlers of event classes computed when the projection is built (say every
        event class of the aggregates it follows); `@on` handlers take precedence."""
        return {}

    @property
    def versioned_name(self) -> str:
        return f"{self.name}_v{self.version}"

    @property
    def generation(self) -> int:
        """0, or the number of the forced rebuild this object builds (`ProjectionRunner.force`):
        the metadata its tables are made in says so, since subclasses make their tables in
        their constructors."""
        generation: int = self.metadata.info.get(GENERATIONS, {}).get(self.versioned_name, 0)
        return generation

    @property
    def storage_name(self) -> str:
        """The name its tables and tracking row are stored under: the versioned name, or
        for a forced rebuild in progress `{versioned_name}r{generation}` (no `_` after the
        versioned name, so its own tables, `{versioned_name}_…`, never match it)."""
        return build_storage_name(self.versioned_name, self.generation) if self.generation else self.versioned_name

    @property
    def stable_name(self) -> str:
        """The versioned name without its version: the read model that successive versions
        replace (`usage_utc` for `usage_v1_utc`). Versioned names must start with
        `{name}_v{version}`."""
        prefix = f"{self.name}_v{self.version}"
        if not self.versioned_name.startswith(prefix):
            raise TypeError(
                f"{type(self).__name__}.versioned_name {self.versioned_name!r} does not start with {prefix!r}"
            )
        return self.name + self.versioned_name[len(prefix) :]

    def table(self, base: str, *columns: sa.Column[Any] | sa.Index) -> sa.Table:
        """A table of this projection's version; a new version gets new tables. In metadata
        that holds it already (the ledgers of one process share theirs: `shared_projections`),
        the table made then, which must have the same columns."""
        name = f"{self.storage_name}_{base}"
        made = self.metadata.tables.get(name)
        if made is None:
            made = sa.Table(name, self.metadata, *columns)
            # Indexes are created IF NOT EXISTS: one named as another would never be made.
            named = [index.name for index in made.indexes]
            if len(set(named)) != len(named):
                raise TypeError(f"table {name!r}: two indexes share a name, in {sorted(map(str, named))}")
        else:
            wanted = [c.name for c in columns if isinstance(c, sa.Column)]
            if made.columns.keys() != wanted:
                raise TypeError(f"table {name!r} defined twice, with columns {made.columns.keys()} and {wanted}")
        self.tables.append(made)
        return made

    def apply(self, conn: Connection, event: object, position: int) -> None:
        handler = self.handlers.get(type(event))
        if handler is not None:
            handler(conn, event, position)

    def apply_batch(self, conn: Connection, batch: Batch) -> None:
        """Applies the events in order. A projection may override this to use fewer SQL
        statements per batch; the rows it leaves must be those of applying each event. The
        runner passes only events of the classes in `handlers` (the others are not decoded)."""
        for position, event in batch:
            self.apply(conn, event, position)

    def rolled_back(self) -> None:
        """What this projection applied since its last commit was rolled back: a cache of
        rows it wrote (not read) must forget them. Nothing to forget by default."""


class BatchProjection(Projection):
    """A projection that folds a batch of events at once in `apply_batch` (a rebuild has
    thousands of events per batch, and per-event statements dominated its time). Its
    handlers, declared with `@on` on `apply_batch` or in `computed_handlers`, all route to
    `apply_batch`: one event is a batch of one."""

    def __init__(self, metadata: sa.MetaData) -> None:
        super().__init__(metadata)
        self.handlers = dict.fromkeys(self.handlers, self.record)

    def record(self, conn: Connection, event: Any, position: int) -> None:
        self.apply_batch(conn, [(position, event)])

    def apply_batch(self, conn: Connection, batch: Batch) -> None:
        raise NotImplementedError


Factory = Callable[[sa.MetaData], Sequence[Projection]]  # this code's projections, in new metadata


def split(projections: Sequence[Projection], parts: int) -> list[list[Projection]]:
    """Shares the projections out into at most `parts` groups of about equal cost, the
    costliest first, each onto the group that costs least so far."""
    groups: list[list[Projection]] = [[] for _ in range(max(1, min(parts, len(projections))))]
    loads = [0.0] * len(groups)
    for projection in sorted(projections, key=lambda p: -p.cost):
        lightest = loads.index(min(loads))
        groups[lightest].append(projection)
        loads[lightest] += projection.cost
    return [group for group in groups if group]
