"""The migration Job: `quantum-router migrate` for one router image, run before that image rolls out."""

from __future__ import annotations

from typing import Any

from router_operator.builders import pods
from router_operator.builders.context import Context
from router_operator.builders.router import router_container
from router_operator.owner import digest

COMPONENT = "migration"
IMAGE_ANNOTATION = "quantumrouter.dev/image"


def migration_name(ctx: Context) -> str:
    """One Job per image (a Job's template is immutable; a new image needs a new Job)."""
    return ctx.owner.child(f"migrate-{digest(ctx.spec.image, 8)}")


def build_migration_job(ctx: Context) -> dict[str, Any]:
    """The Job; the router Deployment is updated to this image only after it has succeeded."""
    container, volumes = router_container(ctx, ["quantum-router", "migrate"])
    container["resources"] = pods.resources(ctx.spec.resources)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": ctx.owner.metadata(
            migration_name(ctx), COMPONENT, annotations={IMAGE_ANNOTATION: ctx.spec.image}
        ),
        "spec": {
            "backoffLimit": 6,
            "activeDeadlineSeconds": 900,
            "template": {
                "metadata": {"labels": ctx.owner.labels(COMPONENT)},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [container],
                    "volumes": volumes,
                    "securityContext": pods.pod_security(),
                    "automountServiceAccountToken": False,
                    **pods.placement(ctx.spec.placement),
                },
            },
        },
    }
