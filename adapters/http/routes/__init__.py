"""The `/v1` resource routers, one module per resource."""

from fastapi import APIRouter

from adapters.http.routes import (
    audit,
    domains,
    groups,
    inventory,
    keypairs,
    policies,
    sessions,
    tokens,
    usage,
    users,
    workload,
)

ROUTERS: list[APIRouter] = [
    policies.router,
    keypairs.router,
    users.router,
    domains.router,
    groups.router,
    sessions.router,
    workload.router,
    inventory.router,
    usage.router,
    audit.router,
    tokens.router,
]
