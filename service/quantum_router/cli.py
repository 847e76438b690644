"""The ``quantum-router`` command: serve, user and API-key management, train and eval."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib.util
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.db.engine import Database
from quantum_router.db.migrate import upgrade
from quantum_router.logs import configure_logging
from quantum_router.settings import Settings, get_settings
from quantum_router.users import (
    UnknownApiKey,
    UnknownUser,
    UserExists,
    create_api_key,
    create_user,
    list_api_keys,
    revoke_api_key,
    set_user_disabled,
)

T = TypeVar("T")
# What `train` and `ray-serve` import; serving installs none of them (the `train` dependency group).
TRAINING_MODULES = {"train": ("ray", "torch", "gymnasium", "scipy"), "ray-serve": ("ray",)}


def missing_training_modules(command: str) -> list[str]:
    """The modules ``command`` needs that this environment lacks."""
    return [m for m in TRAINING_MODULES.get(command, ()) if importlib.util.find_spec(m) is None]


def _training_group_error(command: str, missing: list[str]) -> int:
    print(
        f"quantum-router {command} needs {', '.join(missing)}, from the `train` dependency group, which "
        "serving (make run) does not install. Install it with `make venv` (everything the tests use) or "
        "`uv sync --group train`.",
        file=sys.stderr,
    )
    return 2


def _with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    async def _run() -> T:
        db = Database(settings)
        try:
            await upgrade(db.primary)
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(_run())


def curl_examples(settings: Settings) -> list[str]:
    """Ready-to-paste login and execute commands. Only a development server shows its password in them."""
    base = f"http://{settings.host}:{settings.port}"
    password = "<password>"
    if settings.environment == "development" and settings.admin_password is not None:
        password = settings.admin_password.get_secret_value()
    login = json.dumps({"username": settings.admin_username, "password": password})
    execute = json.dumps(
        {
            "prompt": "Write a Python function that reverses a list",
            "persona": "developer",
            "task_type": "code_generation",
        }
    )
    extract = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
    return [
        f"TOKEN=$(curl -s {base}/v1/auth/login -H 'content-type: application/json' -d '{login}' | {extract})",
        f"curl -s {base}/v1/execute -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' "
        f"-d '{execute}'",
    ]


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    if args.workers is not None:
        try:
            settings = Settings.model_validate({**settings.model_dump(), "workers": args.workers})
        except ValueError as error:
            print(f"serve: {error}", file=sys.stderr)
            return 2
    docs = " (docs at /docs)" if settings.docs_enabled else ""
    workers = f" with {settings.workers} worker processes" if settings.workers > 1 else ""
    print(f"Quantum Router listening on http://{settings.host}:{settings.port}{workers}{docs}", flush=True)
    if settings.metrics_port is not None:
        print(f"Metrics on http://{settings.host}:{settings.metrics_port}/metrics", flush=True)
    print("Try it:", *(f"  {line}" for line in curl_examples(settings)), sep="\n", flush=True)
    if settings.workers > 1:
        from quantum_router.workers import serve_workers

        return serve_workers(settings)
    from quantum_router.app import create_app
    from quantum_router.server import serve

    serve(create_app(settings), settings)
    return 0


def _user_create(settings: Settings, args: argparse.Namespace) -> int:
    password = os.environ.get("QR_NEW_USER_PASSWORD") or getpass.getpass("password: ")
    roles = [r for r in args.roles.split(",") if r]
    try:
        user_id = _with_db(settings, lambda db: create_user(db, args.username, password, roles))
    except UserExists:
        print(f"user {args.username!r} already exists", file=sys.stderr)
        return 1
    print(f"created user {args.username} ({user_id})")
    return 0


def _apikey_create(settings: Settings, args: argparse.Namespace) -> int:
    try:
        key = _with_db(settings, lambda db: create_api_key(db, args.username, args.name))
    except UnknownUser:
        print(f"no user {args.username!r}", file=sys.stderr)
        return 1
    print(key)
    return 0


def _user_disable(settings: Settings, args: argparse.Namespace) -> int:
    disabled = args.action == "disable"
    try:
        _with_db(settings, lambda db: set_user_disabled(db, args.username, disabled))
    except UnknownUser:
        print(f"no user {args.username!r}", file=sys.stderr)
        return 1
    within = f" (every replica within {settings.api_key_cache_seconds:g} s)" if disabled else ""
    print(f"{args.action}d user {args.username}{within}")
    return 0


def _apikey_list(settings: Settings, args: argparse.Namespace) -> int:
    try:
        keys = _with_db(settings, lambda db: list_api_keys(db, args.username))
    except UnknownUser:
        print(f"no user {args.username!r}", file=sys.stderr)
        return 1
    for prefix, name, created, revoked in keys:
        print(f"{prefix}\t{name}\t{created:%Y-%m-%d %H:%M}\t{'revoked' if revoked else 'active'}")
    return 0


def _apikey_revoke(settings: Settings, args: argparse.Namespace) -> int:
    try:
        _with_db(settings, lambda db: revoke_api_key(db, args.key))
    except UnknownApiKey:
        print("no API key with that prefix", file=sys.stderr)  # not echoed: it may be a whole secret key
        return 1
    print(f"revoked; every replica refuses it within {settings.api_key_cache_seconds:g} s")
    return 0


def _policy_list(settings: Settings, args: argparse.Namespace) -> int:
    from quantum_router.db import store
    from quantum_router.policy import PolicyFormatError, policy_from_bytes

    async def _list(db: Database) -> list[tuple[str, str, str]]:
        async def _rows(session: AsyncSession) -> list[tuple[str, str, str]]:
            rows = []
            for artifact in await store.published_policies(session, args.limit):
                try:
                    gate = policy_from_bytes(artifact.data).info.get("gate")
                except PolicyFormatError:
                    gate = None
                rows.append(
                    (artifact.version, artifact.created_at.isoformat(timespec="seconds"), _gate(gate))
                )
            return rows

        return await db.read_primary(_rows)

    print("version\tpublished\tgate (doubly robust value: new vs serving at publication)")
    for row in _with_db(settings, _list):
        print("\t".join(row))
    return 0


def _gate(gate: dict[str, Any] | None) -> str:
    if not gate:
        return "none (not trained from the log, or before the gate)"
    new, serving = gate["new"]["dr"], gate["serving"]["dr"]
    verdict = "passed" if gate["passed"] else "failed (forced)"
    return (
        f"{verdict} on {gate['rows']} rows: {new['value']:.4f} [{new['low']:.4f}, {new['high']:.4f}] vs "
        f"{serving['value']:.4f} [{serving['low']:.4f}, {serving['high']:.4f}]"
    )


_COMMANDS: dict[tuple[str, str], Callable[[Settings, argparse.Namespace], int]] = {
    ("user", "create"): _user_create,
    ("user", "disable"): _user_disable,
    ("user", "enable"): _user_disable,
    ("apikey", "create"): _apikey_create,
    ("apikey", "list"): _apikey_list,
    ("apikey", "revoke"): _apikey_revoke,
    ("policy", "list"): _policy_list,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quantum-router", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service (QR_HOST, QR_PORT)")
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: QR_WORKERS, 1); >1 needs QR_REDIS_URL",
    )
    sub.add_parser("migrate", help="apply database migrations")
    user = sub.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    create = user.add_parser("create", help="create a user (password from QR_NEW_USER_PASSWORD or a prompt)")
    create.add_argument("username")
    create.add_argument("--roles", default="user", help="comma-separated roles (default: user)")
    for action, what in (("disable", "refuse its login, tokens and API keys"), ("enable", "undo disable")):
        user.add_parser(action, help=f"{action} a user: {what}").add_argument("username")
    apikey = sub.add_parser("apikey", help="manage API keys").add_subparsers(dest="action", required=True)
    key = apikey.add_parser("create", help="create an API key for a user and print it once")
    key.add_argument("username")
    key.add_argument("--name", default="default")
    apikey.add_parser("list", help="a user's keys: prefix, name, created, state").add_argument("username")
    revoke = apikey.add_parser("revoke", help="revoke a key, given whole or by its prefix (see list)")
    revoke.add_argument("key", help="the key, or its prefix: the 12 characters after qr_")
    policy = sub.add_parser("policy", help="published routing policies").add_subparsers(
        dest="action", required=True
    )
    listing = policy.add_parser("list", help="newest first, with the off-policy estimates of their gate")
    listing.add_argument("--limit", type=int, default=20)
    sub.add_parser(
        "train",
        help="train a policy on a dataset (train --help) or the experience log (train --from-log --help)",
        add_help=False,
    )
    sub.add_parser("eval", help="evaluate a policy or the baselines", add_help=False)
    sub.add_parser(
        "ray-serve", help="deploy the Ray Serve app that runs variations on a Ray cluster", add_help=False
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else ""
    missing = missing_training_modules(command)
    if missing and "--help" not in argv and "-h" not in argv:
        return _training_group_error(command, missing)
    if argv and argv[0] == "ray-serve":
        from quantum_router.executors import ray_serve_app

        return ray_serve_app.main(argv[1:])
    if argv[:1] == ["train"] and "--from-log" in argv:
        from quantum_router import log_training

        return log_training.main([a for a in argv[1:] if a != "--from-log"], get_settings())
    if argv and argv[0] in ("train", "eval"):
        from quantum_router.learning import cli as learning_cli

        run = learning_cli.train_main if argv[0] == "train" else learning_cli.eval_main
        return run(argv[1:])
    args = _parser().parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level)
    if args.command == "serve":
        return _serve(settings, args)
    if args.command == "migrate":
        _with_db(settings, lambda db: asyncio.sleep(0))
        print("database is at the latest schema")
        return 0
    return _COMMANDS[(args.command, args.action)](settings, args)


if __name__ == "__main__":
    sys.exit(main())
