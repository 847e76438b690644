"""The simulated fleet: a model slower than the deadline times out like a real upstream would."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from quantum_router.catalog import load_catalog
from quantum_router.executors.asyncio_executor import Fallbacks, run_variation
from quantum_router.executors.base import Job
from quantum_router.providers.base import CompletionRequest, ProviderTimeout
from quantum_router.providers.registry import ProviderRegistry
from quantum_router.providers.simulated import SimulatedProvider
from quantum_router.variations import VariationPlan
from tests.conftest import TEST_CATALOG, make_settings


async def test_a_model_slower_than_the_timeout_raises_a_provider_timeout_at_the_timeout() -> None:
    slow = load_catalog(TEST_CATALOG).model("slow")  # 100 s, scaled to 1 s
    provider = SimulatedProvider({"slow": slow}, time_scale=0.01)
    request = CompletionRequest("slow", "system", "hi", 0.0, 16, timeout_seconds=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ProviderTimeout):
        await provider.complete(request)
    assert 0.04 < loop.time() - started < 0.5


async def test_a_variation_whose_provider_times_out_before_the_deadline_is_timed_out(tmp_path: Path) -> None:
    # The provider's own timeout fires here, not the executor's cancellation: the outcome must say timeout
    # either way, or the request is a 503 or a 504 depending on which of the two fires first.
    settings = make_settings(tmp_path)
    providers = ProviderRegistry(load_catalog(TEST_CATALOG), settings)
    job = Job(prompt="hi", persona="developer", task_type="chat", max_tokens=16, timeout_seconds=0.05)
    deadline = asyncio.get_running_loop().time() + job.timeout_seconds
    outcome = await run_variation(
        providers, job, VariationPlan("slow", 0.0, "direct"), Fallbacks((), set()), deadline
    )
    assert outcome.completion is None
    assert outcome.timed_out
