"""The ledger's one exception hierarchy.

Every error a caller can see is a `LedgerError` with a stable code and an HTTP-like
status. The code says what happened: `domain_operation_detail` (Backend.AI's names) where
an operation applies (`group_purge_active_kernels`), else `domain_detail`
(`ledger_invalid_parameters`); a not-found error names the kind of thing not found
(`keypair_not_found`). Audit records keep the codes of their time: nothing parses a code.
Library exceptions are translated at the boundary that meets them, never passed on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any, ClassVar

from domain.shown import encodable


class LedgerError(Exception):
    """Base class of every error the ledger raises on purpose."""

    status: ClassVar[int] = 500
    error_domain: ClassVar[str] = "ledger"
    error_operation: ClassVar[str] = ""  # empty: no operation applies, the code is domain_detail
    error_detail: ClassVar[str] = "internal"
    # Which action of a batch (a workload batch) was refused, set where the batch is applied:
    # a refusal over an entity the action refers to (its group) does not name the action.
    batch_index: int | None = None
    # The input at fault, for an adapter to name (a problem's `field`, the CLI's option):
    # set by the errors about one input (FieldError, ObjectNotFound, Duplicate, ...), else none.
    field: str | None = None

    def __init__(self, message: str) -> None:
        message = encodable(message)  # a message may quote input: a slot name, an unknown key
        super().__init__(message)
        self.message = message

    @property
    def code(self) -> str:
        return "_".join(part for part in (self.error_domain, self.error_operation, self.error_detail) if part)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as its class, message and attributes, not rebuilt through __init__: an
        # error whose __init__ takes required keywords (QuotaExceeded's limit, scope and
        # scope_id) failed to unpickle, so one raised in a worker process (a
        # ProcessPoolExecutor's) reached the caller as BrokenProcessPool.
        return (_unpickled, (type(self), self.args), self.__dict__)

    def weighed(self) -> dict[str, str]:
        """What a refusal weighed, for a caller to act on beside the message (the limit
        and its scope, the host and the permission): members of the HTTP problem and of
        the CLI's --json error alike. Empty for most errors."""
        return {}


def _unpickled(cls: type[LedgerError], args: tuple[Any, ...]) -> LedgerError:
    error = cls.__new__(cls)
    error.args = args
    return error


class FieldError(LedgerError):
    """An error about one input's value: `field` names it (in the message too, before the
    `reason`), for an adapter to name the option or parameter the caller used."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        field = None if field is None else encodable(field)  # a field may be named by input (a slot's name)
        message = encodable(message)
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)
        self.reason = message


class InvalidAPIParameters(FieldError, ValueError):
    """Bad input. A ValueError too, so validators inside pydantic models may raise it.

    `others`: the same input's other refusals (a model weighs every field), so a caller
    can mend them all at once; the message and `field` stay the first one's."""

    status = 400
    error_detail = "invalid_parameters"
    MOST_NAMED: ClassVar[int] = 10  # refusals named at most, this one included: never echo a thousand keys

    def __init__(self, message: str, *, field: str | None = None, others: Iterable[InvalidAPIParameters] = ()) -> None:
        super().__init__(message, field=field)
        self.others: tuple[InvalidAPIParameters, ...] = tuple(islice(others, self.MOST_NAMED - 1))

    def every(self) -> tuple[InvalidAPIParameters, ...]:
        """This refusal and the others, first first."""
        return (self, *self.others)

    @classmethod
    def joined(cls, refusals: Iterable[InvalidAPIParameters]) -> InvalidAPIParameters:
        """Several refusals of one input as one error naming the first and carrying the
        others: each refusal's own others folded in, a field named once, at most
        MOST_NAMED (`refusals` is read no further). `refusals` holds at least one."""
        found: dict[str | None, InvalidAPIParameters] = {}
        for refusal in refusals:
            for each in refusal.every():
                found.setdefault(each.field, each)
            if len(found) >= cls.MOST_NAMED:
                break
        first, *others = found.values()
        return InvalidAPIParameters(first.reason, field=first.field, others=others)

    def renamed(self, name: Callable[[str | None], str | None]) -> InvalidAPIParameters:
        """The same refusals, each field renamed by `name` (to where the caller wrote it)."""
        return InvalidAPIParameters(
            self.reason, field=name(self.field), others=(other.renamed(name) for other in self.others)
        )


class RequestTooLarge(InvalidAPIParameters):
    """A request body past the HTTP API's bound, refused before it is read whole."""

    status = 413
    error_detail = "request_too_large"


class ObjectNotFound(LedgerError):
    """Its code names what was not found: `keypair_not_found`, from `entity_type` (the
    class's domain, say `group_not_found`, when the raiser gave none)."""

    status = 404
    error_detail = "not_found"

    def __init__(self, message: str, *, entity_type: str = "", entity_id: str = "", field: str | None = None) -> None:
        # `field`: the input that named the missing entity (a keypair's `domain_name`), so
        # an adapter can name the option or parameter the caller used for it.
        super().__init__(f"{field}: {message}" if field else message)
        self.entity_type = entity_type
        self.entity_id = entity_id
        self.field = field
        self.reason = message

    @property
    def code(self) -> str:
        return f"{self.entity_type}_{self.error_detail}" if self.entity_type else super().code


class InsufficientPermission(LedgerError):
    """The actor's role may not run this operation on this entity.

    A validator of its own may give its sentence as the message, as seed 004's do
    (`InsufficientPermission("You don't have permission to access this session")`);
    the ledger's own refusals name actor, operation and entity instead."""

    status = 403
    error_domain = "permission"
    error_detail = "forbidden"

    def __init__(
        self, message: str | None = None, *, actor: str = "", operation: str = "", entity: str = "", why: str = ""
    ) -> None:
        super().__init__(f"{actor} may not {operation} {entity}{why}" if message is None else message)
        self.actor = actor
        self.operation = operation
        self.entity = entity


class ForeignEntity(InsufficientPermission):
    """The entity exists in a domain the actor does not act in. The message names neither
    that domain nor whether the entity exists; over HTTP it is the entity's 404."""

    def __init__(self, *, actor: str, operation: str, entity_type: str, entity_id: str) -> None:
        super().__init__(actor=actor, operation=operation, entity=f"{entity_type} {entity_id}", why=" here")
        self.entity_type = entity_type
        self.entity_id = entity_id


class MissingToken(LedgerError):
    """A request without `Authorization: Bearer <token>`."""

    status = 401
    error_domain = "token"
    error_operation = "authenticate"
    error_detail = "missing"


class ConcurrentModification(LedgerError):
    """Optimistic retries were exhausted: another writer kept changing the same stream."""

    status = 409
    error_detail = "conflict"


class StoreUnavailable(LedgerError):
    """The event store or read model database could not be reached or refused the work."""

    status = 503
    error_detail = "unavailable"


class DamagedEvent(LedgerError):
    """A stored event cannot be read back (its bytes altered or cut), or stored events were
    removed: nothing that needs them can be decided. `ledger verify` names it; it is not
    something a retry mends."""

    status = 500
    error_detail = "damaged_event"


class ReadModelVersionMismatch(StoreUnavailable):
    """This process's code and the read models disagree on a projection's version: a newer
    version was activated by newer code (this process must be upgraded to read it)."""

    error_detail = "read_model_version"


class UnknownEventType(StoreUnavailable):
    """A stored event is of a type this release does not know: a newer release wrote it
    (this process must be upgraded to read it), or it was put there behind the ledger's back."""

    error_detail = "unknown_event_type"
    found: str = ""  # which event, of which type, without the advice (`ledger verify` words its own)


class Duplicate(LedgerError):
    """A create refused because its key is taken. `field` names the input that carries the
    key (a policy's `name`, a session's `session_id`), for a caller to point at; the message
    already names the entity, so it is not prefixed with the field."""

    status = 409
    FIELD: ClassVar[str | None] = None  # the usual input of the key; a raiser may name another

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = encodable(field) if field is not None else self.FIELD


# Keypair resource policies


class KeyPairResourcePolicyError(LedgerError):
    error_domain = "keypair_resource_policy"


class DuplicatePolicyName(KeyPairResourcePolicyError, Duplicate):
    FIELD = "name"
    error_operation = "create"
    error_detail = "duplicate_name"


class PolicyInUse(KeyPairResourcePolicyError):
    status = 409
    error_operation = "delete"
    error_detail = "in_use"


class SystemPolicyNotDeletable(KeyPairResourcePolicyError):
    status = 403
    error_operation = "delete"
    error_detail = "system_policy"


class CircularPolicyReference(KeyPairResourcePolicyError):
    status = 400
    error_detail = "circular_reference"


# Keypairs


class DuplicateAccessKey(Duplicate):
    FIELD = "access_key"
    error_domain = "keypair"
    error_operation = "create"
    error_detail = "duplicate_access_key"


# Groups


class GroupError(LedgerError):
    error_domain = "group"


class GroupNotFound(GroupError, ObjectNotFound):
    status = 404
    error_detail = "not_found"


class DuplicateGroupName(GroupError, Duplicate):
    FIELD = "name"
    error_operation = "create"
    error_detail = "duplicate_name"


class PurgeGroupActionActiveKernelsError(GroupError):
    status = 409
    error_operation = "purge"
    error_detail = "active_kernels"


class PurgeGroupActionActiveEndpointsError(GroupError):
    status = 409
    error_operation = "purge"
    error_detail = "active_endpoints"


class PurgeGroupActionVFoldersMountedToActiveKernelsError(GroupError):
    status = 409
    error_operation = "purge"
    error_detail = "vfolders_mounted"


class GroupClearHistory(GroupError):
    """A group's stream holds personal values stored in clear before sealing existed: its
    purge would leave them readable, so it is refused unless the operator accepts that."""

    status = 409
    error_operation = "purge"
    error_detail = "clear_history"


class GroupNotActive(GroupError):
    """The group was soft-deleted: it keeps its history but takes no new workload."""

    status = 409
    error_detail = "inactive"


class GroupSlotsAboveDomain(GroupError, FieldError):
    """An admin set a group's slot above what a superadmin granted the group's domain."""

    status = 403
    error_operation = "set_slots"
    error_detail = "above_domain"


class GroupMoveActiveWorkload(GroupError, InvalidAPIParameters):
    """A group's move to another domain (its `domain_name`) while it holds pending or
    admitted sessions or active kernels: they were decided against its domain's limits
    and count in its domain's usage, which the move would leave behind."""

    status = 409
    error_operation = "move"
    error_detail = "active_workload"


# Workload facts


class WorkloadError(LedgerError):
    error_domain = "workload"


class KernelAlreadyTerminated(WorkloadError):
    status = 409
    error_operation = "terminate_kernel"
    error_detail = "already_terminated"


class DuplicateWorkloadId(WorkloadError, Duplicate):
    error_detail = "duplicate_id"


# Configuration


class ConfigurationError(LedgerError):
    """The deployment's configuration (an environment variable) is invalid; the message is
    one line naming the variable and the bad entry."""

    status = 500
    error_domain = "configuration"
    error_detail = "invalid"


class MasterKeyRotatedAway(ConfigurationError):
    """The master key this process opened the ledger with was rotated away by another
    process: nothing personal opens until it restarts with the new key. 503, as /readyz
    says (another server, or this one restarted, can answer); its code stays the one a
    configuration error has, which clients and probes already match."""

    status = 503


# Read models


class ReadModelStalled(LedgerError):
    """A read model stopped before an event its handler could not apply; the query that
    needs it cannot answer until an operator skips the event or rebuilds the read model.
    Commands and the other read models go on."""

    status = 503
    error_detail = "read_model_stalled"

    def __init__(self, message: str, *, projection: str, position: int, cause: str) -> None:
        super().__init__(message)
        self.projection = projection
        self.position = position
        self.cause = cause


def cause_kind(cause: str) -> str:
    """The kind of a stall's cause, a handler's error written as one line `Kind: message`
    (`projections.database.one_line`): what is kept of it where its message must not be."""
    return cause.partition(": ")[0]


class ProjectionNotStalled(LedgerError):
    """A skip named a position the read model is not stalled at."""

    status = 409
    error_operation = "skip"
    error_detail = "not_stalled"


# Domains and users (each sets its operation: the code names what was refused)


class DuplicateDomainName(Duplicate):
    FIELD = "name"
    error_domain = "domain"
    error_operation = "create"
    error_detail = "duplicate_name"


class DomainNotEmpty(LedgerError):
    """A domain still holding live users (or groups) cannot be deleted."""

    status = 409
    error_domain = "domain"
    error_operation = "delete"
    error_detail = "not_empty"


class DomainNotActive(LedgerError):
    """An inactive domain keeps its users but takes no new ones."""

    status = 409
    error_domain = "domain"
    error_operation = "add_user"
    error_detail = "inactive"


class PolicyNotAllowedInDomain(FieldError):
    """An admin named a keypair resource policy outside the domain's allowed list."""

    status = 403
    error_domain = "domain"
    error_operation = "assign_policy"
    error_detail = "policy_not_allowed"


class DuplicateUser(Duplicate):
    FIELD = "user_id"
    error_domain = "user"
    error_operation = "create"
    error_detail = "duplicate_id"


class UserInUse(LedgerError):
    """A user still owning live keypairs cannot be deleted."""

    status = 409
    error_domain = "user"
    error_operation = "delete"
    error_detail = "in_use"


class UserClearHistory(LedgerError):
    """A user's stream holds personal values stored in clear before sealing existed: an
    erasure would leave them readable, so it is refused unless the operator accepts that
    (issue 14, docs/ERASURE.md)."""

    status = 409
    error_domain = "user"
    error_operation = "erase"
    error_detail = "clear_history"


# Sessions and quotas (issue 12: policies applied)


class QuotaExceeded(LedgerError):
    """A limit refused the request: `limit` is the field that set it (a policy's
    `max_pending_session_count`, a group's `total_resource_slots`...), `scope` is
    `keypair`, `group` or `domain`, and `scope_id` the access key, group id or domain
    name whose limit it is. 412 as Backend.AI's QuotaExceeded."""

    status = 412
    error_domain = "quota"
    error_detail = "exceeded"

    def __init__(self, message: str, *, limit: str, scope: str, scope_id: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.scope = scope
        self.scope_id = encodable(scope_id)  # named by input (an access key, a domain name)

    def weighed(self) -> dict[str, str]:
        return {"limit": self.limit, "scope": self.scope, "scope_id": self.scope_id}


class VFolderHostNotAllowed(LedgerError):
    """No level (domain, group, the effective policy) grants `permission` on `host`."""

    status = 403
    error_domain = "vfolder"
    error_detail = "host_not_allowed"

    def __init__(self, message: str, *, host: str, permission: str, field: str | None = None) -> None:
        super().__init__(message)
        self.host = encodable(host)  # named by input
        self.permission = permission
        self.field = field  # the input that asked for the host: a mount, a vfolder's `host`

    def weighed(self) -> dict[str, str]:
        return {"host": self.host, "permission": self.permission}


class DuplicateSession(Duplicate):
    FIELD = "session_id"
    error_domain = "session"
    error_operation = "enqueue"
    error_detail = "duplicate_id"


class InvalidSessionState(LedgerError):
    """The session's status does not allow the operation (cancel a running session,
    schedule an ended one, report activity of a pending one)."""

    status = 409
    error_domain = "session"
    error_detail = "invalid_state"


# Bearer tokens (issue 13): every refusal is 401, its detail says why


class AuthenticationFailed(LedgerError):
    """A presented token does not authenticate anyone."""

    status = 401
    error_domain = "token"
    error_operation = "authenticate"
    error_detail = "failed"


class UnknownToken(AuthenticationFailed):
    error_detail = "unknown"


class RevokedToken(AuthenticationFailed):
    error_detail = "revoked"


class ExpiredToken(AuthenticationFailed):
    error_detail = "expired"


class TokenAlreadyRevoked(LedgerError):
    status = 409
    error_domain = "token"
    error_operation = "revoke"
    error_detail = "already_revoked"


# Requests over HTTP (issue 13): preconditions and idempotency keys


class PreconditionFailed(LedgerError):
    """`If-Match` named a version the entity no longer (or never) had: another writer got
    there first. Nothing was written; read the entity again and decide again."""

    status = 412
    error_detail = "precondition_failed"


class IdempotencyKeyReused(FieldError):
    """The `Idempotency-Key` was used before with another request (method, path or body)."""

    status = 422
    error_domain = "idempotency"
    error_detail = "key_reused"


class IdempotentRequestApplied(LedgerError):
    """The request under this `Idempotency-Key` was applied once already (it is never
    applied twice). Raised inside the command when a concurrent twin committed first, and
    answered over HTTP with the first response, or, when that response was lost in a crash
    between the commit and its caching, with this error naming what was applied."""

    status = 409
    error_domain = "idempotency"
    error_detail = "already_applied"


class ReadModelBehind(LedgerError):
    """A read asked for `min_position` and the read models did not reach it in time."""

    status = 503
    error_detail = "read_model_behind"
