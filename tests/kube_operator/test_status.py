"""Conditions, phase and the status patch, computed from what the cluster reports."""

from __future__ import annotations

from typing import Any

from router_operator.builders import Plan, plan
from router_operator.runtime import status_patch
from router_operator.status import Cond, conditions_for, is_ready, phase, render_conditions
from tests.kube_operator.conftest import context


def job(done: bool = False, failed: bool = False) -> dict[str, Any]:
    conditions = []
    if done:
        conditions.append({"type": "Complete", "status": "True"})
    if failed:
        conditions.append({"type": "Failed", "status": "True"})
    return {"status": {"conditions": conditions, "succeeded": 1 if done else 0}}


def workload(ready: int, replicas: int | None = None) -> dict[str, Any]:
    return {"spec": {"replicas": ready if replicas is None else replicas}, "status": {"readyReplicas": ready}}


def healthy(p: Plan) -> dict[tuple[str, str], dict[str, Any]]:
    observed: dict[tuple[str, str], dict[str, Any]] = {}
    for child in p.objects:
        key = (child["kind"], child["metadata"]["name"])
        if child["kind"] == "Job":
            observed[key] = job(done=True)
        elif child["kind"] in ("Deployment", "StatefulSet"):
            observed[key] = workload(child["spec"].get("replicas", 2))
    return observed


def conds(
    observed: dict[tuple[str, str], dict[str, Any]], spec: dict[str, Any] | None = None
) -> dict[str, Cond]:
    ctx = context(spec or {})
    return {c.type: c for c in conditions_for(ctx, plan(ctx), observed)}


def test_everything_up_is_ready() -> None:
    p = plan(context({}))
    result = conds(healthy(p))
    assert all(c.ok for c in result.values()), result
    assert phase(list(result.values())) == ("Ready", "Ready")


def test_first_install_waits_for_the_migration() -> None:
    p = plan(context({}))
    observed = healthy(p)
    observed[("Job", p.migration["metadata"]["name"])] = job()
    del observed[("Deployment", "demo")]
    result = conds(observed)
    assert result["MigrationsSucceeded"].reason == "Running"
    assert result["ServiceAvailable"].reason == "WaitingForMigration"
    assert not result["Ready"].ok
    assert phase(list(result.values()))[0] == "Progressing"


def test_failed_migration_is_a_failed_phase_with_the_job_named() -> None:
    p = plan(context({}))
    observed = healthy(p)
    name = p.migration["metadata"]["name"]
    observed[("Job", name)] = job(failed=True)
    result = conds(observed)
    assert result["MigrationsSucceeded"].reason == "MigrationFailed"
    assert f"kubectl logs job/{name}" in result["MigrationsSucceeded"].message
    assert phase(list(result.values())) == ("Failed", "MigrationFailed")


def test_redis_pods_then_bootstrap() -> None:
    p = plan(context({}))
    observed = healthy(p)
    observed[("StatefulSet", "demo-redis")] = workload(4, 6)
    assert conds(observed)["CacheReady"].message == "4/6 Redis pods ready"
    observed[("StatefulSet", "demo-redis")] = workload(6)
    boot = next(k for k in observed if "bootstrap" in k[1])
    observed[boot] = job()
    result = conds(observed)
    assert result["CacheReady"].reason == "Bootstrapping"
    # The router still serves (from its local cache fallback): degraded, not down.
    assert phase(list(result.values())) == ("Degraded", "Bootstrapping")


def test_replicas_not_ready_and_training_not_on_the_request_path() -> None:
    p = plan(context({}))
    observed = healthy(p)
    observed[("StatefulSet", "demo-db-replica")] = workload(0, 1)
    observed[("Deployment", "demo-ray-head")] = workload(0, 1)
    result = conds(observed)
    assert result["DatabaseReady"].reason == "ReplicasNotReady"
    assert result["TrainingReady"].reason == "RayNotReady"
    assert result["Ready"].reason == "ReplicasNotReady"
    observed[("StatefulSet", "demo-db-replica")] = workload(1)
    assert conds(observed)["Ready"].ok


def test_transition_time_moves_only_when_status_flips() -> None:
    first = render_conditions([Cond("Ready", False, "Running", "m")], [], 1, "t1")
    same = render_conditions([Cond("Ready", False, "Bootstrapping", "n")], first, 2, "t2")
    assert same[0]["lastTransitionTime"] == "t1" and same[0]["observedGeneration"] == 2
    flipped = render_conditions([Cond("Ready", True, "Ready", "ok")], same, 2, "t3")
    assert flipped[0]["lastTransitionTime"] == "t3"


def test_status_patch_nulls_dropped_keys_and_skips_no_change() -> None:
    assert status_patch({"phase": "Ready"}, {"phase": "Ready"}) is None
    assert status_patch({"phase": "Ready", "policyVersion": "v1"}, {"phase": "Failed"}) == {
        "phase": "Failed",
        "policyVersion": None,
    }


def test_ready_means_ready_for_the_current_generation() -> None:
    ready = [{"type": "Ready", "status": "True"}]
    assert is_ready({"metadata": {"generation": 2}, "status": {"observedGeneration": 2, "conditions": ready}})
    # Ready for an older spec is not ready yet, and a missing or false condition never is.
    assert not is_ready(
        {"metadata": {"generation": 3}, "status": {"observedGeneration": 2, "conditions": ready}}
    )
    assert not is_ready({"metadata": {"generation": 1}, "status": {"observedGeneration": 1}})
    assert not is_ready(
        {
            "metadata": {"generation": 1},
            "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "False"}]},
        }
    )
