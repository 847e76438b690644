"""Pick the variation executor from settings."""

from __future__ import annotations

from quantum_router.executors.asyncio_executor import AsyncioExecutor
from quantum_router.executors.base import Executor
from quantum_router.providers.registry import ProviderRegistry
from quantum_router.settings import Settings


def build_executor(settings: Settings, providers: ProviderRegistry) -> Executor:
    """The Ray Serve executor when ``QR_RAY_SERVE_URL`` is set, else the in-process asyncio one."""
    if settings.ray_serve_url:
        from quantum_router.executors.ray_executor import RayServeExecutor

        return RayServeExecutor(settings.ray_serve_url)
    return AsyncioExecutor(providers)
