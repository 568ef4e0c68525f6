"""Where the CLI finds the platform: flags first, then the variables `make dev` writes into `.dev/env`.

Facade commands need DPKUBE_URL with DPKUBE_TOKEN (or DPKUBE_USER on a trusted-header deployment);
Kubernetes commands need KUBECONFIG (or an in-cluster account, or ~/.kube/config).
"""

from __future__ import annotations

import argparse
import os

from dpkube.client.connection import Connection
from dpkube.k8s.client import KubeClient, KubeConfig

SYSTEM_NAMESPACE = "dpkube-system"
QUERY_NAMESPACE = "dpkube"


class MissingSetting(SystemExit):
    """A required setting is neither a flag nor in the environment: exit 2 with what to set."""

    def __init__(self, message: str) -> None:
        super().__init__(f"dpkube: {message}")


def add_facade_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="facade URL (default: $DPKUBE_URL)")
    parser.add_argument("--token", help="API token (default: $DPKUBE_TOKEN)")
    parser.add_argument("--user", help="user name, for trusted-header deployments (default: $DPKUBE_USER)")


def add_kube_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", help="kubeconfig (default: $KUBECONFIG, in-cluster, ~/.kube/config)")
    parser.add_argument("--system-namespace", help="namespace of grants, queues and tokens "
                        f"(default: $DPKUBE_SYSTEM_NAMESPACE or {SYSTEM_NAMESPACE})")


def url(args: argparse.Namespace) -> str:
    value = args.url or os.environ.get("DPKUBE_URL")
    if not value:
        raise MissingSetting("no facade URL: pass --url or set DPKUBE_URL (`source .dev/env` after `make dev`)")
    return value


def token(args: argparse.Namespace) -> str | None:
    return args.token or os.environ.get("DPKUBE_TOKEN")


def user(args: argparse.Namespace) -> str | None:
    return getattr(args, "user", None) or os.environ.get("DPKUBE_USER")


def facade(args: argparse.Namespace, timeout: float = 600.0) -> Connection:
    """A connection to the facade with the caller's credentials (token, else the trusted user header)."""
    address = url(args)
    bearer = token(args)
    name = user(args)
    if not bearer and not name:
        raise MissingSetting("no credentials: pass --token or set DPKUBE_TOKEN (or DPKUBE_USER behind a trusted proxy)")
    return Connection(address, token=bearer, user_name=None if bearer else name, timeout=timeout)


def system_namespace(args: argparse.Namespace) -> str:
    return getattr(args, "system_namespace", None) or os.environ.get("DPKUBE_SYSTEM_NAMESPACE") or SYSTEM_NAMESPACE


def kube(args: argparse.Namespace) -> KubeClient:
    """An API-server client as the kubeconfig's user (an admin, for the admin commands)."""
    return KubeClient(KubeConfig.load(getattr(args, "kubeconfig", None)))
