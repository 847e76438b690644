"""Pick the variation executor from settings."""

from __future__ import annotations

from quantum_router.executors.asyncio_executor import AsyncioExecutor
from quantum_router.executors.base import Executor
from quantum_router.providers.registry import ProviderRegistry
from quantum_router.settings import Settings


def build_executor(settings: Settings, providers: ProviderRegistry) -> Executor:
    """The asyncio executor (the embedded default)."""
    return AsyncioExecutor(providers)
