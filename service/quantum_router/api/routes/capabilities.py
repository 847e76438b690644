"""GET /v1/capabilities: what the router can do; served from memory."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from quantum_router.api.deps import ServicesDep
from quantum_router.api.schemas import CapabilitiesResponse

router = APIRouter(tags=["capabilities"])


@router.get("/v1/capabilities", response_model=CapabilitiesResponse)
async def capabilities(services: ServicesDep) -> dict[str, Any]:
    """Models, personas, task types, limits and the policy version."""
    return {**services.capabilities, "policy_version": services.policies.current.version}
