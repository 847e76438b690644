"""The one place that maps a catalog's models to provider instances."""

from __future__ import annotations

from collections.abc import AsyncIterator

from quantum_router.catalog import Catalog
from quantum_router.providers.base import Completion, CompletionRequest, Provider, StreamEvent
from quantum_router.providers.openai_compat import OpenAICompatibleProvider
from quantum_router.providers.replay import ReplayProvider
from quantum_router.providers.simulated import SimulatedProvider
from quantum_router.settings import Settings


class ProviderRegistry:
    """Dispatches each model to the provider that serves it."""

    def __init__(self, catalog: Catalog, settings: Settings) -> None:
        by_kind = {
            kind: {m.name: m for m in catalog.models if m.provider == kind}
            for kind in ("simulated", "openai", "replay")
        }
        self._providers: dict[str, Provider] = {}
        if by_kind["simulated"]:
            simulated = SimulatedProvider(
                by_kind["simulated"],
                time_scale=settings.simulation_time_scale,
                judge_noise=settings.simulation_judge_noise,
            )
            self._providers.update(dict.fromkeys(by_kind["simulated"], simulated))
        if by_kind["openai"]:
            openai = OpenAICompatibleProvider(
                by_kind["openai"], settings.provider_max_retries, settings.provider_backoff_seconds
            )
            self._providers.update(dict.fromkeys(by_kind["openai"], openai))
        if by_kind["replay"]:
            replay = ReplayProvider(by_kind["replay"])
            self._providers.update(dict.fromkeys(by_kind["replay"], replay))

    async def complete(self, request: CompletionRequest) -> Completion:
        """Run ``request`` on the provider that serves its model."""
        return await self._providers[request.model].complete(request)

    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Stream ``request`` from the provider that serves its model."""
        return self._providers[request.model].stream(request)

    async def close(self) -> None:
        """Close each distinct provider once."""
        for provider in {id(p): p for p in self._providers.values()}.values():
            await provider.close()
