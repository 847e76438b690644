# Quantum Router: every target creates what it needs. Heavy caches live outside the repository.
SHELL := /bin/bash
QR_CACHE ?= $(HOME)/.cache/quantum-router
UV_VERSION := 0.13.8
UV := $(QR_CACHE)/uv-$(UV_VERSION)/bin/uv
export UV_CACHE_DIR ?= $(QR_CACHE)/uv-cache
export UV_PYTHON ?= python3.11
export UV_LINK_MODE ?= copy
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run run-stack venv test unit lint fmt bench perf-report bench-stack bench-loop loadtest e2e cluster-up cluster-down clean operator-run crds images

$(UV):
	python3 -m venv $(QR_CACHE)/uv-$(UV_VERSION)
	$(QR_CACHE)/uv-$(UV_VERSION)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-groups
	touch $@

venv: $(VENV)/.synced

# Serving only: the service's own dependencies and none of the groups (no torch, Ray, test or lint tools).
# --inexact keeps whatever `make venv` installed, so alternating run and test never reinstalls anything.
$(VENV)/.serving: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --no-dev --inexact
	touch $@

# The documented local default admin password; set QR_ADMIN_PASSWORD to choose another.
run: export QR_ADMIN_PASSWORD ?= quantum-local-admin
run: $(VENV)/.serving
	$(VENV)/bin/quantum-router serve

# The service on Redis Cluster and PostgreSQL with two read replicas, all on free loopback ports.
run-stack: export QR_ADMIN_PASSWORD ?= quantum-local-admin
run-stack: $(VENV)/.synced
	scripts/run-stack.sh

# Python: ruff and mypy. Shell: every tracked script through shellcheck and bash -n or sh -n.
lint: $(VENV)/.synced
	$(VENV)/bin/ruff check service operator tests e2e bench
	$(VENV)/bin/ruff format --check service operator tests e2e bench
	$(VENV)/bin/mypy
	SHELLCHECK=$(VENV)/bin/shellcheck scripts/lint-shell.sh

fmt: $(VENV)/.synced
	$(VENV)/bin/ruff format service operator tests e2e bench
	$(VENV)/bin/ruff check --fix service operator tests e2e bench

unit: $(VENV)/.synced
	$(VENV)/bin/pytest -m "not integration and not e2e" $(PYTEST_ARGS)

# The whole suite: lint, unit, integration (real Redis Cluster, PostgreSQL, Ray) and e2e (real API server).
test: lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

e2e: $(VENV)/.synced
	$(VENV)/bin/pytest -m e2e $(PYTEST_ARGS)

bench: $(VENV)/.synced
	$(PY) -m bench.service_bench

# Every performance target, LiteLLM side by side and the plots: rewrites the generated part of
# docs/performance.md (about 5 minutes; run it on an otherwise idle machine).
perf-report: $(VENV)/.synced
	$(PY) -m bench.report

bench-stack: $(VENV)/.synced
	$(PY) -m bench.stack_bench

# The closed loop of issue #15 on a wrong catalog, at 5 % and 20 % judge sampling (docs/routing.md); 6-10
# minutes on 2 cores. LOOP_ARGS="--seed 1 --plot /tmp/loop.png" and the like.
bench-loop: $(VENV)/.synced
	RAY_AUTH_MODE=disabled $(PY) -m bench.closed_loop $(LOOP_ARGS)

# Locust, headless and bounded (LOADTEST_ARGS="--users 100 --seconds 120"), against a service it starts on the
# embedded defaults or, with STACK=full, on Redis Cluster and PostgreSQL; reports land in var/loadtest.
STACK ?= embedded
loadtest: $(VENV)/.synced
	$(PY) -m bench.loadtest --stack $(STACK) $(LOADTEST_ARGS)

# The operator against the current kubeconfig (KUBECONFIG), all namespaces; make cluster-up gives one.
operator-run: $(VENV)/.synced
	$(VENV)/bin/router-operator $(OPERATOR_ARGS)

# Regenerate the CRD from the spec models, for kubectl and for the operator chart, and the reference in
# docs/operator.md (unit tests fail when any is stale).
crds: $(VENV)/.synced
	$(PY) -m router_operator.crd > crds/routerdeployment.yaml
	cp crds/routerdeployment.yaml charts/quantum-router-operator/files/routerdeployment.yaml
	$(PY) -m router_operator.reference docs/operator.md

# Router, operator, Redis, PostgreSQL and training images, built here with debootstrap and buildah (root;
# cached under $(QR_CACHE)/images). People with Docker: e2e/kind/kind.sh.
images: $(VENV)/.synced
	images/build.sh all
	images/build.sh train

# REAL_NODE=1 adds a node that runs real containers (root; see docs/testing.md).
cluster-up:
	@e2e/controlplane/cluster.sh up $(if $(REAL_NODE),--real-node)

cluster-down:
	@e2e/controlplane/cluster.sh down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
