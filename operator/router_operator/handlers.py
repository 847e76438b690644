"""Kopf handlers: watch RouterDeployments and hand each change to the runtime. Nothing else lives here."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from kubernetes import client, config

from router_operator import GROUP, PLURAL, VERSION
from router_operator.kube import Kube
from router_operator.runtime import Runtime, needs_prune
from router_operator.settings import OperatorSettings


def api_client() -> tuple[client.ApiClient, bool]:
    """An API client from the in-cluster service account, else the current kubeconfig; and which it was."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient(), True
    except config.ConfigException:
        return config.new_client_from_config(), False  # type: ignore[no-untyped-call]


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Configure Kopf, create the API client and start the periodic re-levelling."""
    cfg = OperatorSettings()
    # Event handlers only: Kopf keeps no progress or diff-base annotations and adds no finalizer.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = cfg.request_timeout_seconds
    api, in_cluster = api_client()
    # One pooled connection per worker, so parallel reconciles do not queue on the client.
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = cfg.workers
    runtime = Runtime(Kube(api, cfg.request_timeout_seconds), cfg, in_cluster)
    memo.runtime = runtime
    memo.resync = asyncio.create_task(runtime.resync_forever())


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Stop re-levelling and let running reconciles finish."""
    memo.resync.cancel()
    await asyncio.get_running_loop().run_in_executor(None, memo.runtime.close)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Reconcile what is new to the operator: first sight at start-up, or a spec it has not handled."""
    if type == "DELETED" or body.metadata.get("deletionTimestamp"):
        return  # owner references garbage-collect the children
    if type is not None and not needs_prune(body):
        return  # our own status write, or a metadata change: the resync covers it
    # A resource never reconciled has no children to prune, except after an operator crash, which
    # the first-sight listing at start-up (type None) covers.
    await memo.runtime.submit(dict(body), prune=type is None or bool(body.get("status")))
