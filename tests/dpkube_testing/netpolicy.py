"""What a set of NetworkPolicies allows, read the way the Kubernetes API documents it, so that tests can
hold a policy engine to whatever the policies in the cluster say (the chart's, the operator's, or both)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """A pod (labels, namespace and its labels) or a bare address outside the pod network."""

    ip: str
    labels: dict[str, str] = field(default_factory=dict)
    namespace: str | None = None
    namespace_labels: dict[str, str] = field(default_factory=dict)

    @property
    def is_pod(self) -> bool:
        return self.namespace is not None


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector against a set of labels: matchLabels and matchExpressions; {} selects everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _peer_matches(peer: dict[str, Any], other: Endpoint, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        address = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(cidr) for cidr in block.get("except") or [])
    if not other.is_pod:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector"), other.labels)


def _port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str, named: dict[str, int]) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        number = named.get(wanted) if isinstance(wanted, str) else int(wanted)
        if number == port or (entry.get("endPort") and number is not None and number <= port <= entry["endPort"]):
            return True
    return False


def _direction_allows(policies: list[dict], subject: Endpoint, other: Endpoint, port: int, protocol: str,
                      direction: str, named: dict[str, int]) -> bool:
    """Whether `subject`'s policies of one direction let traffic with `other` through (isolation rules)."""
    kind, rules_key, peers_key = ("Egress", "egress", "to") if direction == "egress" else ("Ingress", "ingress", "from")
    isolating = [p for p in policies if p["metadata"]["namespace"] == subject.namespace
                 and selects(p["spec"].get("podSelector"), subject.labels)
                 and kind in (p["spec"].get("policyTypes") or ["Ingress"])]
    if not isolating:
        return True
    for policy in isolating:
        for rule in policy["spec"].get(rules_key) or []:
            peers = rule.get(peers_key)
            if (not peers or any(_peer_matches(peer, other, policy["metadata"]["namespace"]) for peer in peers)) \
                    and _port_matches(rule.get("ports"), port, protocol, named):
                return True
    return False


def allows(policies: list[dict], source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP",
           named_ports: dict[str, int] | None = None) -> bool:
    """Whether the policies let `source` open `port` on `destination` (egress of one, ingress of the other)."""
    named = named_ports or {}
    if source.is_pod and not _direction_allows(policies, source, destination, port, protocol, "egress", named):
        return False
    return not destination.is_pod or _direction_allows(policies, destination, source, port, protocol, "ingress",
                                                       named)
