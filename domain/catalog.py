"""The one list of entity types: every stream kind, action scope and history key.

The values are stored (in stream ids, audit rows, history and error payloads), so they
never change; code spells them only through this enum.
"""

from __future__ import annotations

import enum


class EntityType(enum.StrEnum):
    KEYPAIR_RESOURCE_POLICY = "keypair_resource_policy"
    KEYPAIR = "keypair"
    GROUP = "group"
    GROUP_NAME = "group_name"  # the index that keeps group names unique per domain
    VFOLDER = "vfolder"
    KERNEL = "kernel"
    ENDPOINT = "endpoint"
    WORKLOAD = "workload"  # a batch of workload facts
    PROJECTION = "projection"  # a read model's operator interventions
    DOMAIN = "domain"
    USER = "user"
    SESSION = "session"
    SESSION_USAGE = "session_usage"  # the sessions a keypair, group or domain holds (admission)
    LEDGER_MIGRATION = "ledger_migration"  # a one-time rewrite of what an older ledger implied
    TOKEN = "token"  # a bearer token, its stream named by its hash
    IDEMPOTENT_REQUEST = "idempotent_request"  # an HTTP request's Idempotency-Key, stored with its effect
