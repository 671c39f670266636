"""`/v1/...`: routes of this resource (being written; see routes/policies.py for the template)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
