"""Quantum Router's Kubernetes operator: RouterDeployment -> the whole router stack."""

GROUP = "quantumrouter.dev"
VERSION = "v1alpha1"
PLURAL = "routerdeployments"
KIND = "RouterDeployment"
API_VERSION = f"{GROUP}/{VERSION}"
FIELD_MANAGER = "quantum-router-operator"
