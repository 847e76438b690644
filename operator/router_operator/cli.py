"""`router-operator`: run the operator against the current kubeconfig or the in-cluster service account."""

from __future__ import annotations

import argparse
import json
import logging
import os

import kopf

from router_operator.settings import OperatorSettings


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; the rest comes from QR_OPERATOR_* variables."""
    parser = argparse.ArgumentParser(prog="router-operator", description=__doc__)
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch this namespace (repeatable); default: all",
    )
    parser.add_argument(
        "--peering", default=None, help="KopfPeering name for HA replicas; default: standalone"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run until interrupted."""
    args = parse(argv)
    if args.namespace:
        # The runtime reads its settings from the environment, like every other setting.
        os.environ["QR_OPERATOR_NAMESPACES"] = json.dumps(args.namespace)
    if args.peering:
        os.environ["QR_OPERATOR_PEERING"] = args.peering
    cfg = OperatorSettings()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Kopf's per-event INFO lines would drown our own at scale.
    logging.getLogger("kopf").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    import router_operator.handlers  # noqa: F401  (registers the handlers)

    liveness = f"http://{cfg.liveness_host}:{cfg.liveness_port}/healthz" if cfg.liveness_port else None
    kopf.run(
        standalone=cfg.peering is None,
        peering_name=cfg.peering,
        namespaces=cfg.namespaces,
        clusterwide=not cfg.namespaces,
        liveness_endpoint=liveness,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
