"""The manifest builders for the minimal and the full sample: names, labels, owners, probes, scaling, data."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from router_operator.builders import Facts, plan
from router_operator.builders.router import CHECKSUM_ANNOTATION
from tests.kube_operator.conftest import by_name, context, sample

Build = Callable[..., dict[tuple[str, str], dict[str, Any]]]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def router_container(children: dict[tuple[str, str], dict[str, Any]], name: str = "demo") -> dict[str, Any]:
    container: dict[str, Any] = children[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]
    return container


def test_minimal_sample_builds_the_whole_stack(build: Build) -> None:
    children = build(sample("minimal").get("spec") or {})
    assert set(children) == {
        ("Secret", "demo-secrets"),
        ("ConfigMap", "demo-config"),
        ("ConfigMap", "demo-scripts"),
        ("Service", "demo"),
        ("Deployment", "demo"),
        ("PodDisruptionBudget", "demo"),
        ("HorizontalPodAutoscaler", "demo"),
        ("Service", "demo-redis"),
        ("StatefulSet", "demo-redis"),
        ("Service", "demo-db"),
        ("Service", "demo-db-rw"),
        ("Service", "demo-db-ro"),
        ("Service", "demo-db-replica"),
        ("StatefulSet", "demo-db"),
        ("StatefulSet", "demo-db-replica"),
        ("Service", "demo-ray-head"),
        ("Deployment", "demo-ray-head"),
        ("Deployment", "demo-ray-worker"),
        ("CronJob", "demo-train"),
        *[k for k in children if k[0] == "Job"],
    }
    jobs = sorted(name for kind, name in children if kind == "Job")
    assert len(jobs) == 2
    assert jobs[0].startswith("demo-migrate-") and jobs[1].startswith("demo-redis-bootstrap-")


def test_every_child_is_owned_labelled_and_namespaced(build: Build) -> None:
    for spec in (sample("minimal").get("spec") or {}, sample("full")["spec"]):
        for obj in build(spec).values():
            meta = obj["metadata"]
            assert meta["namespace"] == "team-a"
            (ref,) = meta["ownerReferences"]
            assert ref == {
                "apiVersion": "quantumrouter.dev/v1alpha1",
                "kind": "RouterDeployment",
                "name": "demo",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
            assert meta["labels"]["app.kubernetes.io/instance"] == "demo"
            assert meta["labels"]["app.kubernetes.io/managed-by"] == "quantum-router-operator"


def test_router_probes_drain_and_rolling_update(build: Build) -> None:
    children = build({})
    deployment = children[("Deployment", "demo")]
    container = router_container(children)
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    pod = deployment["spec"]["template"]["spec"]
    # The grace period covers the preStop sleep plus the server's drain.
    assert pod["terminationGracePeriodSeconds"] > 5 + 30
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert container["resources"]["requests"] == {"cpu": "250m", "memory": "256Mi"}


def test_replica_count_belongs_to_the_hpa_when_autoscaling(build: Build) -> None:
    auto = build({"replicas": 3})
    assert "replicas" not in auto[("Deployment", "demo")]["spec"]
    assert auto[("HorizontalPodAutoscaler", "demo")]["spec"]["minReplicas"] == 3
    fixed = build({"replicas": 4, "autoscaling": {"enabled": False}})
    assert fixed[("Deployment", "demo")]["spec"]["replicas"] == 4
    assert ("HorizontalPodAutoscaler", "demo") not in fixed


def test_hpa_metrics_of_the_full_sample(build: Build) -> None:
    hpa = build(sample("full")["spec"])[("HorizontalPodAutoscaler", "demo")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 12)
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo"}
    targets = {m.get("resource", {}).get("name") or m["pods"]["metric"]["name"]: m for m in hpa["metrics"]}
    assert targets["cpu"]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 65}
    assert targets["memory"]["resource"]["target"]["averageUtilization"] == 75
    pods = targets["quantum_router_inflight_requests"]
    assert pods["type"] == "Pods" and pods["pods"]["target"] == {"type": "AverageValue", "averageValue": "20"}


def test_hpa_behavior_is_passed_through_only_when_given(build: Build) -> None:
    assert "behavior" not in build({})[("HorizontalPodAutoscaler", "demo")]["spec"]
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 15}, "scaleUp": {"stabilizationWindowSeconds": 0}}
    hpa = build({"autoscaling": {"behavior": behavior}})[("HorizontalPodAutoscaler", "demo")]["spec"]
    assert hpa["behavior"] == behavior


def test_pdb_only_when_two_pods_are_guaranteed(build: Build) -> None:
    assert build({"replicas": 2})[("PodDisruptionBudget", "demo")]["spec"]["maxUnavailable"] == 1
    assert ("PodDisruptionBudget", "demo") not in build({"replicas": 1})
    assert ("PodDisruptionBudget", "demo") not in build({"replicas": 5, "autoscaling": {"minReplicas": 1}})
    off = build({"replicas": 1, "autoscaling": {"enabled": False}})
    assert ("PodDisruptionBudget", "demo") not in off


def test_redis_cluster_layout(build: Build) -> None:
    children = build({"cache": {"managed": {"shards": 4, "replicasPerShard": 2}}})
    sts = children[("StatefulSet", "demo-redis")]
    assert sts["spec"]["replicas"] == 12
    assert sts["spec"]["serviceName"] == "demo-redis"
    assert children[("Service", "demo-redis")]["spec"]["clusterIP"] == "None"
    assert children[("Service", "demo-redis")]["spec"]["publishNotReadyAddresses"] is True
    (job,) = [
        o for (kind, _), o in children.items() if kind == "Job" and "bootstrap" in o["metadata"]["name"]
    ]
    env = env_of(job["spec"]["template"]["spec"]["containers"][0])
    nodes = env["REDIS_NODES"]["value"].split()
    assert len(nodes) == 12
    assert nodes[0] == "demo-redis-0.demo-redis.team-a.svc:6379"
    assert env["REDIS_REPLICAS"]["value"] == "2"
    assert env["REDISCLI_AUTH"]["valueFrom"]["secretKeyRef"] == {
        "name": "demo-secrets",
        "key": "redis-password",
    }
    # The routers reach the cluster with the generated password, never a literal one.
    router_env = env_of(router_container(children))
    assert router_env["QR_REDIS_URL"]["value"] == "redis://:$(REDIS_PASSWORD)@demo-redis:6379/0"


def test_a_new_redis_layout_gets_a_new_bootstrap_job() -> None:
    a = by_name(plan(context({})))
    b = by_name(plan(context({"cache": {"managed": {"shards": 5}}})))
    jobs = [{n for k, n in x if k == "Job" and "bootstrap" in n} for x in (a, b)]
    assert jobs[0] and jobs[1] and jobs[0] != jobs[1]


def test_any_change_to_the_bootstrap_pod_template_gets_a_new_job() -> None:
    """A Job's template is immutable: re-applying a changed template under the old name would fail."""

    def job(spec: dict[str, object]) -> str:
        return next(n for k, n in by_name(plan(context(spec))) if k == "Job" and "bootstrap" in n)

    assert job({}) == job({})
    assert job({}) != job({"placement": {"nodeSelector": {"type": "real"}}})
    assert job({}) != job({"imagePullPolicy": "Never"})


def test_postgres_primary_replicas_and_their_services(build: Build) -> None:
    children = build(sample("full")["spec"])
    rw, ro = children[("Service", "demo-db-rw")], children[("Service", "demo-db-ro")]
    assert rw["spec"]["selector"]["app.kubernetes.io/component"] == "database-primary"
    assert ro["spec"]["selector"]["app.kubernetes.io/component"] == "database-replica"
    assert children[("StatefulSet", "demo-db")]["spec"]["replicas"] == 1
    replica = children[("StatefulSet", "demo-db-replica")]
    assert replica["spec"]["replicas"] == 2
    env = env_of(replica["spec"]["template"]["spec"]["containers"][0])
    assert env["PRIMARY_HOST"]["value"] == "demo-db-rw"
    assert replica["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "10Gi"
    router_env = env_of(router_container(children))
    assert router_env["QR_DATABASE_URL"]["value"].startswith(
        "postgresql+asyncpg://$(DATABASE_USER):$(DATABASE_PASSWORD)@demo-db-rw:5432/"
    )
    assert json.loads(router_env["QR_DATABASE_REPLICA_URLS"]["value"].replace("$(", "").replace(")", ""))[
        0
    ].count("demo-db-ro")
    assert router_env["DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "demo-secrets"


def test_no_read_only_service_without_replicas(build: Build) -> None:
    children = build({"database": {"managed": {"replicas": 0}}})
    assert ("Service", "demo-db-ro") not in children
    assert ("StatefulSet", "demo-db-replica") not in children
    assert "QR_DATABASE_REPLICA_URLS" not in env_of(router_container(children))


def test_cloudnativepg_cluster_when_its_crd_is_installed(build: Build) -> None:
    children = build({"database": {"managed": {"replicas": 2}}}, facts=Facts(cloudnativepg=True))
    cluster = children[("Cluster", "demo-db")]
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    assert cluster["spec"]["instances"] == 3
    assert not [k for k in children if k[0] == "StatefulSet" and k[1].startswith("demo-db")]
    env = env_of(router_container(children))
    assert env["DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "demo-db-app", "key": "password"}
    # Forcing the StatefulSet provider ignores the installed CRD.
    forced = build({"database": {"managed": {"provider": "StatefulSet"}}}, facts=Facts(cloudnativepg=True))
    assert ("StatefulSet", "demo-db") in forced


def test_external_database_and_cache_come_only_from_secrets(build: Build) -> None:
    spec = {
        "database": {
            "external": {
                "primaryUrlSecretRef": {"name": "db", "key": "rw"},
                "replicaUrlSecretRef": {"name": "db", "key": "ro"},
            }
        },
        "cache": {"external": {"urlSecretRef": {"name": "cache", "key": "url"}, "cluster": False}},
    }
    children = build(spec)
    assert not [k for k in children if k[1].startswith(("demo-db", "demo-redis"))]
    assert ("ConfigMap", "demo-scripts") not in children
    env = env_of(router_container(children))
    assert env["QR_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "db", "key": "rw"}
    assert env["QR_DATABASE_REPLICA_URLS"]["value"] == '["$(DATABASE_REPLICA_URL)"]'
    assert env["QR_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "cache", "key": "url"}
    assert children[("ConfigMap", "demo-config")]["data"]["QR_REDIS_CLUSTER"] == "false"


def test_no_secret_value_is_ever_in_a_config_map_or_a_literal_env(build: Build) -> None:
    children = build(sample("full")["spec"])
    config = children[("ConfigMap", "demo-config")]["data"]
    assert not [k for k in config if "SECRET" in k or "PASSWORD" in k or k.endswith("_URL")]
    env = env_of(router_container(children))
    for name in (
        "QR_JWT_SECRET",
        "QR_ADMIN_PASSWORD",
        "OPENAI_API_KEY",
        "DATABASE_PASSWORD",
        "REDIS_PASSWORD",
    ):
        assert "value" not in env[name] and "secretKeyRef" in env[name]["valueFrom"]
    assert env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "provider-keys", "key": "openai"}


def test_config_map_carries_settings_and_the_inline_catalog(build: Build) -> None:
    children = build(sample("full")["spec"])
    data = children[("ConfigMap", "demo-config")]["data"]
    assert data["QR_EPSILON"] == "0.02"
    assert data["QR_COST_WEIGHT"] == "0.5"
    assert json.loads(data["QR_COMPLEX_TASK_TYPES"]) == ["code_analysis", "architecture"]
    assert data["QR_RATE_LIMIT_PER_MINUTE"] == "1200"
    assert data["QR_CATALOG_FILE"] == "/etc/quantum-router/catalog/catalog.yaml"
    assert "gpt-4o-mini" in data["catalog.yaml"]
    volumes = children[("Deployment", "demo")]["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "catalog",
        "configMap": {"name": "demo-config", "items": [{"key": "catalog.yaml", "path": "catalog.yaml"}]},
    } in volumes


def test_checksum_rolls_pods_on_config_changes_only() -> None:
    def checksum(spec: dict[str, Any], external: str | None = None) -> str:
        deployment = plan(context(spec), external).deployment
        value: str = deployment["spec"]["template"]["metadata"]["annotations"][CHECKSUM_ANNOTATION]
        return value

    base = checksum({})
    assert checksum({"routing": {"epsilon": 0.2}}) != base
    assert checksum({"settings": {"QR_LOG_LEVEL": "DEBUG"}}) != base
    assert checksum({"cache": {"managed": {"shards": 6}}}) == base
    ref = {"catalog": {"configMapRef": {"name": "catalog"}}}
    assert checksum(ref, "models: [a]") != checksum(ref, "models: [b]")


def test_migration_job_per_image_runs_migrate(build: Build) -> None:
    children = build({"image": "quantum-router:0.2.0"})
    (job,) = [o for (kind, name), o in children.items() if kind == "Job" and "migrate" in name]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["quantum-router", "migrate"]
    assert container["image"] == "quantum-router:0.2.0"
    other = build({"image": "quantum-router:0.3.0"})
    assert job["metadata"]["name"] not in {n for _, n in other}


def test_training_on_managed_ray_or_an_existing_one_or_off(build: Build) -> None:
    children = build({})
    cron = children[("CronJob", "demo-train")]["spec"]
    args = cron["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:4] == ["quantum-router", "train", "--from-log", "--publish"]
    assert args[args.index("--address") + 1] == "ray://demo-ray-head:10001"
    assert cron["concurrencyPolicy"] == "Forbid"

    existing = build({"training": {"rayAddress": "ray://shared-ray:10001"}})
    assert not [k for k in existing if "ray" in k[1]]
    args = existing[("CronJob", "demo-train")]["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert "ray://shared-ray:10001" in args

    off = build({"training": {"enabled": False}})
    assert not [k for k in off if "ray" in k[1] or k[0] == "CronJob"]

    kuberay = build({}, facts=Facts(kuberay=True))
    cluster = kuberay[("RayCluster", "demo-ray")]
    assert cluster["spec"]["workerGroupSpecs"][0]["replicas"] == 1
    kargs = kuberay[("CronJob", "demo-train")]["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert "ray://demo-ray-head-svc:10001" in kargs


def test_placement_reaches_every_pod_template(build: Build) -> None:
    children = build(sample("full")["spec"])
    for obj in children.values():
        spec = obj.get("spec") or {}
        template = spec.get("template") or (spec.get("jobTemplate") or {}).get("spec", {}).get("template")
        if obj["kind"] in ("Deployment", "StatefulSet", "Job", "CronJob"):
            pod = template["spec"]
            assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}, obj["metadata"]["name"]
            assert pod["tolerations"][0]["key"] == "dedicated"


def test_no_pod_gets_service_link_variables(build: Build) -> None:
    """A Service named `qr` would give every pod QR_PORT=tcp://...: the router's own setting prefix."""
    for spec in (sample("minimal").get("spec") or {}, sample("full")["spec"]):
        for obj in build(spec).values():
            if obj["kind"] not in ("Deployment", "StatefulSet", "Job", "CronJob"):
                continue
            spec_ = obj["spec"]
            template = spec_.get("template") or spec_["jobTemplate"]["spec"]["template"]
            assert template["spec"]["enableServiceLinks"] is False, obj["metadata"]["name"]


def test_volumes_are_claimed_and_kept_unless_ephemeral(build: Build) -> None:
    kept = build({})[("StatefulSet", "demo-db")]["spec"]
    assert kept["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert kept["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    ephemeral = build({"cache": {"managed": {"ephemeral": True}}})[("StatefulSet", "demo-redis")]["spec"]
    assert "volumeClaimTemplates" not in ephemeral
    assert {"name": "data", "emptyDir": {}} in ephemeral["template"]["spec"]["volumes"]
