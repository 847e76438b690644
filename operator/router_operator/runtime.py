"""Runs reconciles: one at a time per RouterDeployment, in a bounded thread pool, writing status and Events.

Kopf delivers the watch events; this module adds the periodic re-levelling. It is a plain loop rather
than a Kopf timer because Kopf puts a finalizer on every object that has a timer, and a finalizer makes
`kubectl delete rd` hang whenever the operator is not running. Owner references need no finalizer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from router_operator import API_VERSION, KIND
from router_operator.builders import Facts
from router_operator.kube import Kube, KubeError
from router_operator.reconcile import Outcome, discover, reconcile
from router_operator.settings import OperatorSettings

log = logging.getLogger("router_operator")
# Phases worth looking at again before the next resync: the stack is coming up or partly down.
SETTLING = frozenset({"Progressing", "Degraded"})


def needs_prune(body: Mapping[str, Any]) -> bool:
    """A spec the operator has not reconciled yet may have dropped children: look for leftovers."""
    status = body.get("status") or {}
    return bool(status.get("observedGeneration") != body["metadata"].get("generation"))


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch from old to new status (None when nothing changed); dropped keys become null."""
    if dict(old) == dict(new):
        return None
    patch: dict[str, Any] = dict(new)
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def now() -> str:
    """RFC 3339 UTC timestamp, as Kubernetes conditions carry."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Runtime:
    """Shared state of a running operator: the API client, the pool, per-object locks, cached facts."""

    def __init__(self, kube: Kube, settings: OperatorSettings, in_cluster: bool) -> None:
        self.kube = kube
        self.settings = settings
        self.pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="reconcile")
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._facts: tuple[float, Facts] | None = None
        self.probe_policy = in_cluster if settings.probe_policy is None else settings.probe_policy
        self.reconciles = 0
        self._requeued: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def facts(self) -> Facts:
        """Installed optional CRDs, looked up at most every facts_ttl_seconds."""
        if self._facts is None or time.monotonic() - self._facts[0] > self.settings.facts_ttl_seconds:
            self._facts = (time.monotonic(), discover(self.kube))
        return self._facts[1]

    async def submit(
        self, body: Mapping[str, Any], prune: bool, observe_only: bool = False, delay: float | None = None
    ) -> None:
        """Reconcile one RouterDeployment on the pool; while it is coming up, look again after `delay`
        (requeue_seconds first, doubling up to the resync period), so Ready is reported when the children
        are, not at the next resync."""
        loop = asyncio.get_running_loop()
        phase = await loop.run_in_executor(self.pool, self.run, body, prune, observe_only)
        delay = self.settings.requeue_seconds if delay is None else delay
        uid = body["metadata"]["uid"]
        # One pending requeue per object.
        if phase not in SETTLING or uid in self._requeued or delay >= self.settings.resync_seconds:
            return
        self._requeued.add(uid)
        meta = body["metadata"]
        task = loop.create_task(self._again(meta["namespace"], meta["name"], uid, delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _again(self, namespace: str, name: str, uid: str, delay: float) -> None:
        """The requeue: re-read the resource, then reconcile it reading (not applying) its children."""
        await asyncio.sleep(delay)
        self._requeued.discard(uid)
        loop = asyncio.get_running_loop()
        try:
            body = await loop.run_in_executor(self.pool, self.kube.get, API_VERSION, KIND, namespace, name)
        except KubeError as exc:
            log.warning("re-reading %s/%s failed, the resync will retry: %s", namespace, name, exc)
            return
        if body is None or body["metadata"]["uid"] != uid or body["metadata"].get("deletionTimestamp"):
            return
        await self.submit(body, needs_prune(body), observe_only=True, delay=delay * 2)

    def run(self, body: Mapping[str, Any], prune: bool, observe_only: bool = False) -> str | None:
        """Reconcile, then write status and Events; returns the phase. Failures are logged in one line and
        retried later."""
        meta = body["metadata"]
        where = f"{meta['namespace']}/{meta['name']}"
        with self._locks[meta["uid"]]:
            try:
                outcome = reconcile(self.kube, body, self.facts(), now(), prune, observe_only)
                self.reconciles += 1
                if self.probe_policy:
                    self._probe_policy(outcome)
                self._write(body, outcome)
                phase: str | None = outcome.status.get("phase")
                return phase
            except KubeError as exc:
                log.warning("reconcile of %s failed, will retry: %s", where, exc)
            except Exception as exc:  # the loop must go on for every other resource
                log.error("reconcile of %s failed, will retry: %s: %s", where, type(exc).__name__, exc)
        return None

    def _write(self, body: Mapping[str, Any], outcome: Outcome) -> None:
        meta = body["metadata"]
        patch = status_patch(body.get("status") or {}, outcome.status)
        if patch is not None:
            try:
                self.kube.merge_patch_status(API_VERSION, KIND, meta["namespace"], meta["name"], patch)
            except KubeError as exc:
                if exc.status == 404:  # deleted while we worked
                    return
                raise
        for event_type, reason, message in outcome.events:
            self._event(meta, event_type, reason, message)

    def _event(self, meta: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        stamp = now()
        self.kube.create(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
                "involvedObject": {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "uid": meta["uid"],
                },
                "type": event_type,
                "reason": reason,
                "message": message[:1024],
                "source": {"component": "quantum-router-operator"},
                "reportingComponent": "quantumrouter.dev/operator",
                "reportingInstance": "quantum-router-operator",
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
            }
        )

    def _probe_policy(self, outcome: Outcome) -> None:
        """The policy version the router Service answers with (only where Service names resolve)."""
        router = (outcome.status.get("endpoints") or {}).get("router")
        if not router or not outcome.status.get("readyReplicas"):
            return
        try:
            with urllib.request.urlopen(f"{router}/v1/health", timeout=2) as resp:
                version = json.load(resp).get("policy_version")
        except (OSError, ValueError):
            return
        if version:
            outcome.status["policyVersion"] = str(version)

    def list_all(self) -> list[dict[str, Any]]:
        """Every RouterDeployment the operator watches."""
        scopes: list[str | None] = list(self.settings.namespaces) or [None]
        out: list[dict[str, Any]] = []
        for ns in scopes:
            out += self.kube.list_objects(API_VERSION, KIND, ns)
        return out

    async def resync_forever(self) -> None:
        """Re-level every RouterDeployment each resync_seconds (restores children changed by hand)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            try:
                bodies = await loop.run_in_executor(self.pool, self.list_all)
            except KubeError as exc:
                log.warning("listing RouterDeployments failed, will retry: %s", exc)
                continue
            live = [b for b in bodies if not b["metadata"].get("deletionTimestamp")]
            started = time.monotonic()
            await asyncio.gather(*(self.submit(b, needs_prune(b)) for b in live))
            log.info(
                "resync of %d RouterDeployments took %.2f s; totals: %d reconciles, %d API requests",
                len(live),
                time.monotonic() - started,
                self.reconciles,
                self.kube.requests,
            )

    def close(self) -> None:
        """Stop the pool (running reconciles finish)."""
        self.pool.shutdown(wait=True, cancel_futures=True)
