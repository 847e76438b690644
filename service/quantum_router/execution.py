"""One execution: cache lookup, routing decision, variations, scoring, experience record."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quantum_router.cache.base import Cache, CacheUnavailable
from quantum_router.cache.keys import response_key
from quantum_router.catalog import Catalog
from quantum_router.db.experience_writer import ExperienceWriter
from quantum_router.db.models import new_id
from quantum_router.executors.base import Executor, Job, VariationOutcome
from quantum_router.features import FloatArray
from quantum_router.judge import Judge, JudgeTask
from quantum_router.metrics import Metrics
from quantum_router.outcomes import Observed, observed_quality
from quantum_router.policy_store import PolicyStore
from quantum_router.providers.base import Completion, Delta, ProviderError, ProviderTimeout, StreamEvent
from quantum_router.providers.registry import ProviderRegistry
from quantum_router.routing import Decision, decide
from quantum_router.scoring import score_answers
from quantum_router.settings import Settings
from quantum_router.variations import VariationPlan, plan_variations
from quantum_router.verifiers import Verifier, build_verifiers, verify

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
    # Chat requests (/v1/chat/completions): the conversation and sampling parameters go to the upstream as
    # they are; ``prompt`` is what the policy sees. ``cost_weight`` comes from a routing alias.
    messages: tuple[Mapping[str, Any], ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    temperature: float | None = None
    cost_weight: float | None = None

    def cache_key(self, variations: int, scope: str | None) -> str:
        """The response-cache key: everything that changes the answer, within ``scope`` (a user id, or
        None for the cache everyone shares)."""
        upstream = ""
        # The alias's cost weight changes which model answers, so it is part of the key too.
        if self.messages or self.params or self.temperature is not None or self.cost_weight is not None:
            upstream = json.dumps(
                [list(self.messages), dict(self.params), self.temperature, self.cost_weight],
                sort_keys=True,
                default=str,
            )
        return response_key(
            self.prompt,
            self.persona,
            self.task_type,
            self.model,
            variations,
            self.max_tokens,
            scope,
            upstream,
        )


@dataclass
class AnswerStream:
    """A streamed answer whose upstream has already sent its first delta (so the model is settled).

    ``deltas`` yields the text as it arrives; once it is exhausted, ``result`` holds what ``execute``
    would have returned (cost, variations, ``experience_id``) and the experience has been written.
    """

    model: str
    cache: str
    policy_version: str
    experience_id: str
    deltas: AsyncIterator[str]
    result: dict[str, Any] | None = None


@dataclass(frozen=True)
class RequestFeatures:
    """What the policy read for a request, and what of it the experience log keeps."""

    vector: FloatArray
    # The prompt's packed n-gram buckets (``text_buckets.encode_buckets``) when the policy has a text model:
    # what lets ``train --from-log`` refit that model without the prompt being logged. None otherwise.
    text_buckets: bytes | None = None


@dataclass(frozen=True)
class Answer:
    """A fresh answer: what the client sees (``public``) and what the experience log needs."""

    public: dict[str, Any]
    features: RequestFeatures
    decision: Decision
    # The chosen model's observed outcome, or None (see outcomes.py): the logged label.
    observed: Observed | None
    cost_penalty: float
    latency_penalty: float
    # The chosen model's own answer (None when it failed): what a judge grades, since the logged action
    # is the choice, whichever variation won.
    chosen_text: str | None = None


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
        metrics: Metrics,
        providers: ProviderRegistry,
        experiences: ExperienceWriter,
        verifiers: Sequence[Verifier] | None = None,
        judge: Judge | None = None,
    ) -> None:
        self._settings = settings
        self._judge = judge
        self._verifiers = list(
            verifiers if verifiers is not None else build_verifiers(settings.verifier_answers_file)
        )
        self._providers = providers
        self._experiences = experiences
        self._catalog = catalog
        self._policies = policies
        self._executor = executor
        self._cache = cache
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

    def _cache_key(self, user_id: str, request: ExecuteRequest, count: int) -> str:
        return request.cache_key(count, user_id if self._settings.cache_scope == "user" else None)

    def route(self, request: ExecuteRequest) -> tuple[RequestFeatures, Decision]:
        """Features and decision for a request (a forced model skips the policy)."""
        policy = self._policies.current
        features = RequestFeatures(
            *policy.features_and_buckets(request.prompt, request.persona, request.task_type)
        )
        if request.model is not None:
            return features, Decision(request.model, [request.model], 1.0, False, {})
        cost_weight = request.cost_weight if request.cost_weight is not None else self._settings.cost_weight
        decision = decide(
            policy, features.vector, set(self._costs), self._settings.epsilon, self._rng, cost_weight
        )
        return features, decision

    async def execute(self, user_id: str, request: ExecuteRequest) -> dict[str, Any]:
        """Answer a request from the cache or the fleet, and record the experience."""
        started = time.perf_counter()
        count = self.variation_count(request)
        key = self._cache_key(user_id, request, count)
        if not request.bypass_cache:
            cached = await self._cache_get(key)
            if cached is not None:
                return await self._answer_from_cache(user_id, request, cached, started)
        answer = await self._run(request, count, started)
        # Cached before the experience is written: the upstream call is paid for, and a database failure
        # (answered 503) must not cost it again on the retry. A bypassed lookup still refreshes the entry.
        await self._cache_set(key, answer.public)
        experience_id = await self._record(user_id, request, answer)
        self._submit_to_judge(experience_id, user_id, request, answer)
        return {**answer.public, "cache": "miss", "experience_id": experience_id}

    async def stream(self, user_id: str, request: ExecuteRequest) -> AnswerStream:
        """Like :meth:`execute`, but the answer streams as the upstream produces it.

        Only a single-variation miss streams from the upstream. A cache hit, or a request that runs several
        variations (the best answer is known only when all have finished), is answered in one delta.
        Failures before the first delta raise as ``execute`` does, so the caller can still answer an error.
        """
        started = time.perf_counter()
        count = self.variation_count(request)
        if count > 1:
            return _whole(await self.execute(user_id, request))
        if not request.bypass_cache:
            cached = await self._cache_get(self._cache_key(user_id, request, count))
            if cached is not None:
                return _whole(await self._answer_from_cache(user_id, request, cached, started))
        features, decision, plans, job = self._plan(request, count)
        outcome, events, first = await self._open_stream(job, plans[0])
        if events is None or first is None:
            # Counted and raised exactly as a failed non-streamed request is.
            self._tally([outcome])
            raise _upstream_failure([outcome])
        key = self._cache_key(user_id, request, count)
        experience_id = new_id()

        async def deltas() -> AsyncIterator[str]:
            completion = first if isinstance(first, Completion) else None
            if isinstance(first, Delta):
                yield first.text
            try:
                async for event in events:
                    if isinstance(event, Delta):
                        yield event.text
                    else:
                        completion = event
                if completion is None:
                    raise ProviderError(
                        f"{outcome.model}: stream ended without a completion", retryable=False
                    )
            except ProviderError as exc:
                outcome.error = str(exc)
                self._tally([outcome])
                raise
            outcome.completion = completion
            outcome.latency_ms = (time.perf_counter() - started) * 1000
            result = self._summarise(request, features, decision, [outcome], started)
            await self._cache_set(key, result.public)
            await self._record(user_id, request, result, experience_id)
            self._submit_to_judge(experience_id, user_id, request, result)
            # Runs only once the caller iterates the deltas, after ``answer`` below is bound.
            answer.result = {**result.public, "cache": "miss", "experience_id": experience_id}

        answer = AnswerStream(outcome.model, "miss", self._policies.current.version, experience_id, deltas())
        return answer

    async def _open_stream(
        self, job: Job, plan: VariationPlan
    ) -> tuple[VariationOutcome, AsyncIterator[StreamEvent] | None, StreamEvent | None]:
        """The first model (the plan's, then the fallbacks) whose stream yields a first event in time: its
        outcome (still without a completion), the stream and that event. When none does, the failed
        outcome and no stream; ``timed_out`` then says whether every attempt timed out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + job.timeout_seconds
        outcome = VariationOutcome(plan, plan.model, timed_out=True)
        errors: list[str] = []
        for model in (plan.model, *job.fallbacks):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            outcome.model = model
            outcome.tried.append(model)
            events = self._providers.stream(job.completion_request(model, plan, remaining))
            try:
                async with asyncio.timeout(remaining):
                    first = await anext(events)
            except (ProviderError, TimeoutError, StopAsyncIteration) as exc:
                await events.aclose()  # type: ignore[attr-defined]
                outcome.timed_out = outcome.timed_out and isinstance(exc, ProviderTimeout | TimeoutError)
                errors.append(str(exc) or f"{model}: timed out")
                continue
            outcome.timed_out = False
            return outcome, events, first
        outcome.error = "; ".join(errors) or "no time left"
        return outcome, None, None

    def _plan(
        self, request: ExecuteRequest, count: int
    ) -> tuple[RequestFeatures, Decision, list[VariationPlan], Job]:
        """Route (with its metrics) and plan the variations and the job they share."""
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
            messages=request.messages,
            params=request.params,
            temperature=request.temperature,
        )
        return features, decision, plans, job

    async def _run(self, request: ExecuteRequest, count: int, started: float) -> Answer:
        features, decision, plans, job = self._plan(request, count)
        outcomes = await self._executor.run(job, plans)
        return self._summarise(request, features, decision, outcomes, started)

    def _summarise(
        self,
        request: ExecuteRequest,
        features: RequestFeatures,
        decision: Decision,
        outcomes: list[VariationOutcome],
        started: float,
    ) -> Answer:
        self._tally(outcomes)
        ok = [o for o in outcomes if o.ok]
        if not ok:
            raise _upstream_failure(outcomes)
        completions = [o.completion for o in ok if o.completion is not None]
        texts = [c.text for c in completions]
        priors = [decision.scores.get(o.model, 0.5) for o in ok]
        scores = score_answers(texts, priors, [c.finish_reason for c in completions])
        # A verifier's verdict is an observation: it overrides the prior-based score when picking, too.
        verdicts = [verify(self._verifiers, request.task_type, request.prompt, t) for t in texts]
        scores = [s if v is None else round(v, 6) for s, v in zip(scores, verdicts, strict=True)]
        best = max(range(len(ok)), key=lambda i: scores[i])
        variations = []
        total_cost = 0.0
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        for o in outcomes:
            cost = 0.0
            if o.completion is not None:
                usage["prompt_tokens"] += o.completion.prompt_tokens
                usage["completion_tokens"] += o.completion.completion_tokens
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
        mine = max(own, key=lambda i: scores[i]) if own else None
        observed = observed_quality(
            chosen_ok=mine is not None,
            chosen_text=texts[mine] if mine is not None else None,
            chosen_finish=completions[mine].finish_reason if mine is not None else None,
            verdict=verdicts[mine] if mine is not None else None,
            texts=texts,
            chosen_index=mine,
        )
        public = {
            "answer": winner.completion.text,
            "model": winner.model,
            "variations": variations,
            "cost_usd": round(total_cost, 8),
            "latency_ms": round(latency_ms, 3),
            "policy_version": self._policies.current.version,
            # For OpenAI-shaped answers: every token the upstream calls used, and why the winner stopped.
            "usage": usage,
            "finish_reason": winner.completion.finish_reason,
        }
        cost_penalty, latency_penalty = self.penalties(winner.model, latency_ms)
        chosen_text = texts[mine] if mine is not None else None
        return Answer(public, features, decision, observed, cost_penalty, latency_penalty, chosen_text)

    def _tally(self, outcomes: list[VariationOutcome]) -> None:
        """Count each variation's outcome, and every failed provider call on its way."""
        for o in outcomes:
            outcome = "ok" if o.ok else ("timeout" if o.timed_out else "error")
            self._metrics.variations.labels(o.model, outcome).inc()
            for failed in o.tried[:-1] if o.ok else o.tried:
                self._metrics.provider_errors.labels(failed).inc()

    def penalties(self, model: str, latency_ms: float) -> tuple[float, float]:
        """(cost weight x model cost per 1k tokens, latency weight x seconds): the prior's reward units."""
        policy = self._policies.current
        weight = self._settings.cost_weight if self._settings.cost_weight is not None else policy.cost_weight
        return weight * self._costs.get(model, 0.0), self._settings.latency_weight * latency_ms / 1000

    async def _record(
        self, user_id: str, request: ExecuteRequest, answer: Answer, experience_id: str | None = None
    ) -> str:
        decision = answer.decision
        public = answer.public
        observed = answer.observed
        quality = observed.quality if observed is not None else None
        fields = {
            "features": sparse_features(answer.features.vector),
            "text_buckets": answer.features.text_buckets,
            "action": decision.chosen,
            "propensity": decision.propensity,
            "explored": decision.explored,
            "variations": public["variations"],
            "quality": quality,
            "quality_source": observed.source.value if observed is not None else None,
            "cost_usd": public["cost_usd"],
            "latency_ms": public["latency_ms"],
            "cost_penalty": answer.cost_penalty,
            "latency_penalty": answer.latency_penalty,
            "reward": None if quality is None else quality - answer.cost_penalty - answer.latency_penalty,
            "cache_hit": False,
            "policy_version": public["policy_version"],
        }
        if experience_id is not None:
            fields["id"] = experience_id
        return await self._insert_experience(user_id, request, fields)

    def _submit_to_judge(
        self, experience_id: str, user_id: str, request: ExecuteRequest, answer: Answer
    ) -> None:
        """Offer the chosen model's answer to the judge, which grades a sample in the background (never
        awaited here, so the response does not wait for it). A failed choice already has its label."""
        if self._judge is None or answer.chosen_text is None:
            return
        self._judge.submit(
            JudgeTask(
                experience_id=experience_id,
                user_id=user_id,
                task_type=request.task_type,
                prompt=request.prompt,
                answer=answer.chosen_text,
                cost_penalty=answer.cost_penalty,
                latency_penalty=answer.latency_penalty,
            )
        )

    async def _insert_experience(self, user_id: str, request: ExecuteRequest, fields: dict[str, Any]) -> str:
        """Write an experience: who asked what, plus the outcome ``fields``; returns its id once committed."""
        row = {
            "user_id": user_id,
            "prompt_hash": hashlib.sha256(request.prompt.encode()).hexdigest(),
            "persona": request.persona,
            "task_type": request.task_type,
            **fields,
        }
        return await self._experiences.add(row, owner=user_id)

    async def _answer_from_cache(
        self, user_id: str, request: ExecuteRequest, cached: dict[str, Any], started: float
    ) -> dict[str, Any]:
        latency_ms = (time.perf_counter() - started) * 1000
        fields = {
            "features": {"dim": 0, "idx": [], "val": []},
            # Every row of a batch insert carries the same columns.
            "text_buckets": None,
            "action": cached["model"],
            "propensity": 1.0,
            "explored": False,
            "variations": [],
            # Nothing new was observed: the answer is the one already logged.
            "quality": None,
            "quality_source": None,
            "cost_usd": 0.0,
            "latency_ms": latency_ms,
            "reward": None,
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


def _upstream_failure(outcomes: list[VariationOutcome]) -> UpstreamFailure:
    """No variation answered; a timeout when every failure was one."""
    timed_out = all(o.timed_out for o in outcomes)
    return UpstreamFailure("; ".join(o.error or "failed" for o in outcomes), timed_out=timed_out)


async def _one(text: str) -> AsyncIterator[str]:
    """A whole answer as a stream of one delta."""
    yield text


def _whole(result: dict[str, Any]) -> AnswerStream:
    """An answer that is already complete, as a stream."""
    return AnswerStream(
        result["model"], result["cache"], result["policy_version"], result["experience_id"],
        _one(result["answer"]), result,
    )  # fmt: skip
