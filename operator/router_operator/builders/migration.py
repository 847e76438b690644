"""The migration Job: `quantum-router migrate` for one router image, run before that image rolls out."""

from __future__ import annotations

from typing import Any

from router_operator.builders import pods
from router_operator.builders.connections import database_env
from router_operator.builders.context import Context
from router_operator.owner import digest

COMPONENT = "migration"
IMAGE_ANNOTATION = "quantumrouter.dev/image"


def pod_template(ctx: Context) -> dict[str, Any]:
    """Only what `migrate` reads (the database URL): a catalog or settings change needs no new Job."""
    container = {
        "name": "migrate",
        "image": ctx.spec.image,
        "imagePullPolicy": ctx.spec.image_pull_policy,
        "args": ["quantum-router", "migrate"],
        "env": database_env(ctx),
        "resources": pods.resources(ctx.spec.resources),
        "securityContext": pods.container_security(),
    }
    return {
        "metadata": {"labels": ctx.owner.labels(COMPONENT)},
        "spec": pods.pod_spec(ctx.spec.placement, [container], restartPolicy="OnFailure"),
    }


def build_migration_job(ctx: Context) -> dict[str, Any]:
    """The Job; the router Deployment is updated to this image only after it has succeeded.

    Its name carries a digest of its pod template: a Job's template is immutable, so a new image (or
    new database settings) gets a new Job, and the gate waits for that one.
    """
    template = pod_template(ctx)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": ctx.owner.metadata(
            ctx.owner.child(f"migrate-{digest(template, 8)}"),
            COMPONENT,
            annotations={IMAGE_ANNOTATION: ctx.spec.image},
        ),
        "spec": {"backoffLimit": 6, "activeDeadlineSeconds": 900, "template": template},
    }
