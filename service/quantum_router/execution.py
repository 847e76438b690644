"""One execution: cache lookup, routing decision, variations, scoring, experience record."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.cache.base import Cache, CacheUnavailable
from quantum_router.cache.keys import response_key
from quantum_router.catalog import Catalog
from quantum_router.db import store
from quantum_router.db.engine import Database
from quantum_router.executors.base import Executor, Job, VariationOutcome
from quantum_router.features import FloatArray
from quantum_router.metrics import Metrics
from quantum_router.policy_store import PolicyStore
from quantum_router.routing import Decision, decide
from quantum_router.scoring import score_answers
from quantum_router.settings import Settings
from quantum_router.variations import plan_variations

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExecuteRequest:
    """A validated execution request."""

    prompt: str
    persona: str
    task_type: str
    model: str | None = None
    variations: int | None = None
    bypass_cache: bool = False
    max_tokens: int = 1024


@dataclass(frozen=True)
class Answer:
    """A fresh answer: what the client sees (``public``) and what the experience log needs."""

    public: dict[str, Any]
    features: FloatArray
    decision: Decision
    quality: float
    cost_penalty: float
    latency_penalty: float


class UpstreamFailure(Exception):
    """No variation produced an answer. ``timed_out`` is True when every failure was a timeout."""

    def __init__(self, message: str, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


def sparse_features(features: FloatArray) -> dict[str, Any]:
    """A compact JSON form of a feature vector (most n-gram buckets are zero)."""
    idx = np.flatnonzero(features)
    return {"dim": int(features.shape[0]), "idx": idx.tolist(), "val": np.round(features[idx], 6).tolist()}


def dense_features(data: dict[str, Any]) -> FloatArray:
    """Inverse of :func:`sparse_features`."""
    vec = np.zeros(int(data["dim"]), dtype=np.float32)
    vec[np.asarray(data["idx"], dtype=np.int64)] = np.asarray(data["val"], dtype=np.float32)
    return vec


class ExecutionService:
    """Runs ``/v1/execute`` requests; owns no connections, only uses what it is handed."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        policies: PolicyStore,
        executor: Executor,
        cache: Cache,
        db: Database,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        self._policies = policies
        self._executor = executor
        self._cache = cache
        self._db = db
        self._metrics = metrics
        self._rng = random.Random(settings.random_seed)
        self._costs = {m.name: m.cost_per_1k_tokens for m in catalog.models}

    def variation_count(self, request: ExecuteRequest) -> int:
        """How many variations a request runs: asked for, or more for complex task types."""
        if request.variations is not None:
            return request.variations
        if request.task_type in self._settings.complex_task_types:
            return self._settings.complex_variations
        return 1

    def route(self, request: ExecuteRequest) -> tuple[FloatArray, Decision]:
        """Features and decision for a request (a forced model skips the policy)."""
        policy = self._policies.current
        features = policy.features(request.prompt, request.persona, request.task_type)
        if request.model is not None:
            return features, Decision(request.model, [request.model], 1.0, False, {})
        decision = decide(
            policy, features, set(self._costs), self._settings.epsilon, self._rng, self._settings.cost_weight
        )
        return features, decision

    async def execute(self, user_id: str, request: ExecuteRequest) -> dict[str, Any]:
        """Answer a request from the cache or the fleet, and record the experience."""
        started = time.perf_counter()
        count = self.variation_count(request)
        scope = user_id if self._settings.cache_scope == "user" else None
        key = response_key(
            request.prompt,
            request.persona,
            request.task_type,
            request.model,
            count,
            request.max_tokens,
            scope,
        )
        if not request.bypass_cache:
            cached = await self._cache_get(key)
            if cached is not None:
                return await self._answer_from_cache(user_id, request, cached, started)
        answer = await self._run(request, count, started)
        # Cached before the experience is written: the upstream call is paid for, and a database failure
        # (answered 503) must not cost it again on the retry. A bypassed lookup still refreshes the entry.
        await self._cache_set(key, answer.public)
        experience_id = await self._record(user_id, request, answer)
        return {**answer.public, "cache": "miss", "experience_id": experience_id}

    async def _run(self, request: ExecuteRequest, count: int, started: float) -> Answer:
        t0 = time.perf_counter()
        features, decision = self.route(request)
        self._metrics.decision_seconds.observe(time.perf_counter() - t0)
        self._metrics.model_selections.labels(decision.chosen, str(decision.explored).lower()).inc()
        plans = plan_variations(decision.ranking if request.model is None else [request.model], count)
        fallbacks = (
            () if request.model else tuple(m for m in decision.ranking if m not in {p.model for p in plans})
        )
        job = Job(
            prompt=request.prompt,
            persona=request.persona,
            task_type=request.task_type,
            max_tokens=request.max_tokens,
            timeout_seconds=self._settings.request_timeout_seconds,
            fallbacks=fallbacks,
        )
        outcomes = await self._executor.run(job, plans)
        return self._summarise(request, features, decision, outcomes, started)

    def _summarise(
        self,
        request: ExecuteRequest,
        features: FloatArray,
        decision: Decision,
        outcomes: list[VariationOutcome],
        started: float,
    ) -> Answer:
        for o in outcomes:
            outcome = "ok" if o.ok else ("timeout" if o.timed_out else "error")
            self._metrics.variations.labels(o.model, outcome).inc()
            for failed in o.tried[:-1] if o.ok else o.tried:
                self._metrics.provider_errors.labels(failed).inc()
        ok = [o for o in outcomes if o.ok]
        if not ok:
            timed_out = all(o.timed_out for o in outcomes)
            raise UpstreamFailure("; ".join(o.error or "failed" for o in outcomes), timed_out=timed_out)
        completions = [o.completion for o in ok if o.completion is not None]
        priors = [decision.scores.get(o.model, 0.5) for o in ok]
        scores = score_answers([c.text for c in completions], priors, [c.finish_reason for c in completions])
        best = max(range(len(ok)), key=lambda i: scores[i])
        variations = []
        total_cost = 0.0
        for o in outcomes:
            cost = 0.0
            if o.completion is not None:
                tokens = o.completion.prompt_tokens + o.completion.completion_tokens
                cost = tokens / 1000 * self._costs[o.model]
                self._metrics.cost.labels(o.model).inc(cost)
            total_cost += cost
            score = scores[ok.index(o)] if o.ok else 0.0
            variations.append(
                {
                    "model": o.model,
                    "latency_ms": round(o.latency_ms, 3),
                    "cost_usd": round(cost, 8),
                    "score": score,
                    "temperature": o.plan.temperature,
                    "status": "ok" if o.ok else ("timeout" if o.timed_out else "error"),
                }
            )
        latency_ms = (time.perf_counter() - started) * 1000
        winner = ok[best]
        assert winner.completion is not None
        # The logged action is the policy's choice, so its quality is that model's own answer: a choice that
        # failed and was rescued by a fallback must not be credited with the fallback's answer.
        own = [i for i, o in enumerate(ok) if o.model == decision.chosen and o.plan.model == decision.chosen]
        quality = max((scores[i] for i in own), default=0.0)
        public = {
            "answer": winner.completion.text,
            "model": winner.model,
            "variations": variations,
            "cost_usd": round(total_cost, 8),
            "latency_ms": round(latency_ms, 3),
            "policy_version": self._policies.current.version,
        }
        cost_penalty, latency_penalty = self.penalties(winner.model, latency_ms)
        return Answer(public, features, decision, quality, cost_penalty, latency_penalty)

    def penalties(self, model: str, latency_ms: float) -> tuple[float, float]:
        """(cost weight x model cost per 1k tokens, latency weight x seconds): the prior's reward units."""
        policy = self._policies.current
        weight = self._settings.cost_weight if self._settings.cost_weight is not None else policy.cost_weight
        return weight * self._costs.get(model, 0.0), self._settings.latency_weight * latency_ms / 1000

    async def _record(self, user_id: str, request: ExecuteRequest, answer: Answer) -> str:
        decision = answer.decision
        public = answer.public
        fields = {
            "features": sparse_features(answer.features),
            "action": decision.chosen,
            "propensity": decision.propensity,
            "explored": decision.explored,
            "variations": public["variations"],
            "quality": answer.quality,
            "cost_usd": public["cost_usd"],
            "latency_ms": public["latency_ms"],
            "cost_penalty": answer.cost_penalty,
            "latency_penalty": answer.latency_penalty,
            "reward": answer.quality - answer.cost_penalty - answer.latency_penalty,
            "cache_hit": False,
            "policy_version": public["policy_version"],
        }
        return await self._insert_experience(user_id, request, fields)

    async def _insert_experience(self, user_id: str, request: ExecuteRequest, fields: dict[str, Any]) -> str:
        """Write an experience: who asked what, plus the outcome ``fields``."""
        row = {
            "user_id": user_id,
            "prompt_hash": hashlib.sha256(request.prompt.encode()).hexdigest(),
            "persona": request.persona,
            "task_type": request.task_type,
            **fields,
        }

        async def _add(session: AsyncSession) -> str:
            return (await store.add_experience(session, **row)).id

        return await self._db.write(_add, owner=user_id)

    async def _answer_from_cache(
        self, user_id: str, request: ExecuteRequest, cached: dict[str, Any], started: float
    ) -> dict[str, Any]:
        latency_ms = (time.perf_counter() - started) * 1000
        fields = {
            "features": {"dim": 0, "idx": [], "val": []},
            "action": cached["model"],
            "propensity": 1.0,
            "explored": False,
            "variations": [],
            "quality": max((v["score"] for v in cached["variations"]), default=0.0),
            "cost_usd": 0.0,
            "latency_ms": latency_ms,
            "reward": 0.0,
            "cache_hit": True,
            "policy_version": cached["policy_version"],
        }
        experience_id = await self._insert_experience(user_id, request, fields)
        latency_ms = (time.perf_counter() - started) * 1000
        return {
            **cached,
            "cost_usd": 0.0,
            "latency_ms": round(latency_ms, 3),
            "cache": "hit",
            "experience_id": experience_id,
        }

    async def _cache_get(self, key: str) -> dict[str, Any] | None:
        try:
            raw = await self._cache.get(key)
        except CacheUnavailable as exc:
            self._metrics.cache_errors.inc()
            log.warning("cache unavailable, serving a miss: %s", exc)
            raw = None
        self._metrics.record_cache(raw is not None)
        return json.loads(raw) if raw is not None else None

    async def _cache_set(self, key: str, public: dict[str, Any]) -> None:
        try:
            await self._cache.set(key, json.dumps(public).encode(), self._settings.cache_ttl_seconds)
        except CacheUnavailable as exc:
            self._metrics.cache_errors.inc()
            log.warning("cache unavailable, answer not stored: %s", exc)
