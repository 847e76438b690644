"""Who owns the children: names, labels and owner references derived from one RouterDeployment."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from router_operator import API_VERSION, FIELD_MANAGER, GROUP, KIND

APP_NAME = "quantum-router"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
OWNER_LABEL = f"{GROUP}/routerdeployment"


def digest(value: Any, length: int = 10) -> str:
    """A short, stable hash of any JSON-able value (names of immutable children, checksums)."""
    blob = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


@dataclass(frozen=True)
class Owner:
    """The RouterDeployment a child belongs to."""

    name: str
    namespace: str
    uid: str

    def child(self, suffix: str = "") -> str:
        """A child's name: the RouterDeployment's name plus a suffix."""
        return f"{self.name}-{suffix}" if suffix else self.name

    def selector(self, component: str) -> dict[str, str]:
        """Labels that select one component's pods (stable: never changes after creation)."""
        return {"app.kubernetes.io/name": APP_NAME, INSTANCE_LABEL: self.name, COMPONENT_LABEL: component}

    def labels(self, component: str) -> dict[str, str]:
        """Every label a child of this component carries."""
        return {
            **self.selector(component),
            "app.kubernetes.io/managed-by": FIELD_MANAGER,
            OWNER_LABEL: self.name,
        }

    def reference(self) -> dict[str, Any]:
        """Owner reference: deleting the RouterDeployment garbage-collects the child."""
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def metadata(
        self, name: str, component: str, annotations: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Metadata of a child: name, namespace, labels, owner reference."""
        meta: dict[str, Any] = {
            "name": name,
            "namespace": self.namespace,
            "labels": self.labels(component),
            "ownerReferences": [self.reference()],
        }
        if annotations:
            meta["annotations"] = annotations
        return meta
