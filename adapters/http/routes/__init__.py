"""The `/v1` resource routers, one module per resource."""

from fastapi import APIRouter

from adapters.http.routes import policies

ROUTERS: list[APIRouter] = [policies.router]
