"""The product's load scenario (DESIGN.md section 6) for Locust: 50 % simple code generation as a developer,
30 % complex analysis as an architect, 20 % capabilities, 1-3 s between requests; plus a constant-rate user
for throughput. ``make loadtest`` (bench/loadtest.py) starts a service and runs this headless.

Environment: ``QR_LOADTEST_PASSWORD`` (the admin password of the service under test), ``QR_LOADTEST_PROMPTS``
(distinct prompts per task type, so some requests hit the cache; default 50), ``QR_LOADTEST_RATE``
(requests per second of each constant-rate user; default 5).
"""

from __future__ import annotations

import os
import random

from locust import HttpUser, between, constant_throughput, task

PASSWORD = os.environ.get("QR_LOADTEST_PASSWORD", "quantum-local-admin")
PROMPTS = int(os.environ.get("QR_LOADTEST_PROMPTS", "50"))
RATE = float(os.environ.get("QR_LOADTEST_RATE", "5"))

SIMPLE = [f"Write a Python function that solves exercise {i}" for i in range(PROMPTS)]
COMPLEX = [f"Review module {i} of the payment service for race conditions" for i in range(PROMPTS)]


class _Authenticated(HttpUser):
    abstract = True

    def on_start(self) -> None:
        response = self.client.post("/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        response.raise_for_status()
        self.client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def execute(self, prompt: str, persona: str, task_type: str, name: str, bypass: bool = False) -> None:
        body = {"prompt": prompt, "persona": persona, "task_type": task_type}
        if bypass:
            body["options"] = {"bypass_cache": True}  # type: ignore[assignment]
        self.client.post("/v1/execute", json=body, name=name)


class RouterUser(_Authenticated):
    """A person using the router: the design's mix with think time."""

    wait_time = between(1, 3)
    weight = 10

    @task(5)
    def simple_code_generation(self) -> None:
        self.execute(random.choice(SIMPLE), "developer", "code_generation", "execute simple")

    @task(3)
    def complex_analysis(self) -> None:
        self.execute(random.choice(COMPLEX), "architect", "code_analysis", "execute complex")

    @task(2)
    def capabilities(self) -> None:
        self.client.get("/v1/capabilities", name="capabilities")


class ThroughputUser(_Authenticated):
    """A steady client: cache misses at a constant rate, for throughput against latency."""

    wait_time = constant_throughput(RATE)
    weight = 1

    @task
    def miss(self) -> None:
        prompt = f"Write a function {random.getrandbits(64):x}"
        self.execute(prompt, "developer", "code_generation", "execute miss (constant rate)", bypass=True)
