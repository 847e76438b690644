"""The training CronJob: `quantum-router train --from-log --publish` on the Ray cluster."""

from __future__ import annotations

from typing import Any

from router_operator.builders import pods
from router_operator.builders.config import config_name
from router_operator.builders.connections import cache_env, database_env
from router_operator.builders.context import Context
from router_operator.builders.ray import ray_address

COMPONENT = "training"


def build_cronjob(ctx: Context) -> dict[str, Any] | None:
    """One run at a time; a run that is still going when the next is due is not doubled."""
    training = ctx.spec.training
    if not training.enabled:
        return None
    tmp_volume, tmp_mount = pods.tmp_volume()
    args = [
        "quantum-router",
        "train",
        "--from-log",
        "--publish",
        "--address",
        ray_address(ctx),
        "--steps",
        str(training.steps),
        "--output",
        "/tmp/policy.npz",
    ]
    container = {
        "name": "train",
        "image": training.image,
        "imagePullPolicy": ctx.spec.image_pull_policy,
        "args": args,
        "envFrom": [{"configMapRef": {"name": config_name(ctx)}}],
        "env": [*database_env(ctx), *cache_env(ctx)],  # policies are published to both
        "volumeMounts": [tmp_mount],
        "securityContext": pods.container_security(),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": ctx.owner.metadata(ctx.owner.child("train"), COMPONENT),
        "spec": {
            "schedule": training.schedule,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 1,
                    "template": {
                        "metadata": {"labels": ctx.owner.labels(COMPONENT)},
                        "spec": pods.pod_spec(
                            ctx.spec.placement, [container], [tmp_volume], restartPolicy="Never"
                        ),
                    },
                }
            },
        },
    }
