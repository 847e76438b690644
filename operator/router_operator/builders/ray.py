"""The Ray cluster training runs on: head and worker Deployments with a head Service, or a KubeRay
RayCluster when that CRD is installed."""

from __future__ import annotations

from typing import Any

from router_operator.builders import pods
from router_operator.builders.context import RAY_CLIENT_PORT, RAY_DASHBOARD_PORT, RAY_GCS_PORT, Context
from router_operator.builders.service import service_for

HEAD = "ray-head"
WORKER = "ray-worker"
PORTS = (("gcs", RAY_GCS_PORT), ("client", RAY_CLIENT_PORT), ("dashboard", RAY_DASHBOARD_PORT))


def head_service_name(ctx: Context) -> str:
    """Host of the Ray head: ours, or the Service KubeRay names `<cluster>-head-svc`."""
    if ctx.ray_kind == "KubeRay":
        return f"{kuberay_name(ctx)}-head-svc"
    return ctx.owner.child(HEAD)


def kuberay_name(ctx: Context) -> str:
    """Name of the RayCluster."""
    return ctx.owner.child("ray")


def ray_address(ctx: Context) -> str:
    """The Ray Client address the training job connects to."""
    if ctx.spec.training.ray_address:
        return ctx.spec.training.ray_address
    return f"ray://{head_service_name(ctx)}:{RAY_CLIENT_PORT}"


def _container(ctx: Context, name: str, args: list[str], resources: dict[str, Any]) -> dict[str, Any]:
    _, tmp_mount = pods.tmp_volume()
    return {
        "name": name,
        "image": ctx.spec.training.image,
        "imagePullPolicy": ctx.spec.image_pull_policy,
        "args": args,
        "resources": resources,
        "volumeMounts": [tmp_mount],
        # Ray writes its session directory under /tmp; the rest of the root stays read-only.
        "securityContext": pods.container_security(),
    }


def _deployment(ctx: Context, component: str, replicas: int, container: dict[str, Any]) -> dict[str, Any]:
    tmp_volume, _ = pods.tmp_volume()
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": ctx.owner.metadata(ctx.owner.child(component), component),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": ctx.owner.selector(component)},
            "template": {
                "metadata": {"labels": ctx.owner.labels(component)},
                "spec": pods.pod_spec(ctx.spec.placement, [container], [tmp_volume]),
            },
        },
    }


def head_args() -> list[str]:
    """`ray start --head` in the foreground, reachable from other pods."""
    return [
        "ray",
        "start",
        "--head",
        "--block",
        f"--port={RAY_GCS_PORT}",
        f"--ray-client-server-port={RAY_CLIENT_PORT}",
        "--dashboard-host=0.0.0.0",
        f"--dashboard-port={RAY_DASHBOARD_PORT}",
    ]


def build_head(ctx: Context) -> dict[str, Any]:
    """One head pod."""
    ray = ctx.spec.training.ray_or_default
    container = _container(ctx, "ray-head", head_args(), pods.resources(ray.head_resources))
    container["ports"] = [{"name": n, "containerPort": p} for n, p in PORTS]
    container["readinessProbe"] = {"tcpSocket": {"port": "gcs"}, "periodSeconds": 5}
    return _deployment(ctx, HEAD, 1, container)


def build_head_service(ctx: Context) -> dict[str, Any]:
    """The head's Service (GCS, Ray Client, dashboard)."""
    return service_for(ctx, head_service_name(ctx), HEAD, list(PORTS))


def build_workers(ctx: Context) -> dict[str, Any]:
    """Worker pods joining the head."""
    ray = ctx.spec.training.ray_or_default
    args = ["ray", "start", "--block", f"--address={head_service_name(ctx)}:{RAY_GCS_PORT}"]
    container = _container(ctx, "ray-worker", args, pods.resources(ray.workers.resources))
    return _deployment(ctx, WORKER, ray.workers.replicas, container)


def build_kuberay_cluster(ctx: Context) -> dict[str, Any]:
    """A ray.io/v1 RayCluster with one head and one worker group of the same images and resources."""
    ray = ctx.spec.training.ray_or_default

    def template(component: str, name: str, res: dict[str, Any]) -> dict[str, Any]:
        container = _container(ctx, name, [], res)
        del container["args"]  # KubeRay builds the `ray start` command from rayStartParams.
        return {
            "metadata": {"labels": ctx.owner.labels(component)},
            "spec": {
                "containers": [container],
                "volumes": [pods.tmp_volume()[0]],
                "securityContext": pods.pod_security(),
                **pods.placement(ctx.spec.placement),
            },
        }

    workers = ray.workers.replicas
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": ctx.owner.metadata(kuberay_name(ctx), HEAD),
        "spec": {
            "headGroupSpec": {
                "rayStartParams": {"dashboard-host": "0.0.0.0"},
                "template": template(HEAD, "ray-head", pods.resources(ray.head_resources)),
            },
            "workerGroupSpecs": [
                {
                    "groupName": "workers",
                    "replicas": workers,
                    "minReplicas": workers,
                    "maxReplicas": max(workers, 1),
                    "rayStartParams": {},
                    "template": template(WORKER, "ray-worker", pods.resources(ray.workers.resources)),
                }
            ],
        },
    }
