"""Who may do what, as Kubernetes objects: the roles to bind to people, and the admission policy that
makes the API server itself refuse a DPQuery spending someone else's budget.

RBAC cannot filter reads by a field, so kubectl users each get a namespace of their own (a RoleBinding
of `dpkube-user` there); the facade, which filters by user itself, uses one shared namespace.
Users never get `update`/`patch` on DPQueries (specs are immutable anyway, and finalizers are the
operator's), nor anything on status, budgets, pods, logs or Secrets.
"""

from __future__ import annotations

import json
from typing import Any

from dpkube.models.crd import GROUP, VERSION

USER_ROLE = "dpkube-user"
ADMIN_ROLE = "dpkube-admin"
ADMINS_GROUP = "dpkube:admins"
POLICY = "dpkube-query-owner"


def user_role() -> dict[str, Any]:
    """What a data scientist may do in their namespace: submit, read and cancel queries; run experiments."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": USER_ROLE},
        "rules": [
            {"apiGroups": [GROUP], "resources": ["dpqueries"], "verbs": ["create", "get", "list", "watch", "delete"]},
            {"apiGroups": [GROUP], "resources": ["experiments"],
             "verbs": ["create", "get", "list", "watch", "delete"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
        ],
    }


def admin_role() -> dict[str, Any]:
    """What a platform admin may do: everything of dpkube, budget grants and Secrets included."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": ADMIN_ROLE},
        "rules": [
            {"apiGroups": [GROUP], "resources": ["*"], "verbs": ["*"]},
            {"apiGroups": [""], "resources": ["configmaps", "secrets", "events", "pods", "pods/log"],
             "verbs": ["*"]},
        ],
    }


def query_owner_policy(trusted_service_accounts: list[str]) -> list[dict[str, Any]]:
    """The ValidatingAdmissionPolicy (CEL, no webhook) and its binding: spec.user must be the caller.

    Exempt: cluster admins (system:masters), dpkube admins (group dpkube:admins), and the given
    service accounts (the facade, which authenticates users itself, and the operator).
    """
    trusted = json.dumps(trusted_service_accounts)
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": POLICY},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [GROUP], "apiVersions": [VERSION], "operations": ["CREATE", "UPDATE"],
                "resources": ["dpqueries"],
            }]},
            "matchConditions": [{
                "name": "caller-is-not-trusted",
                "expression": (
                    "!request.userInfo.groups.exists(g, g == 'system:masters' || g == '" + ADMINS_GROUP + "')"
                    f" && !(request.userInfo.username in {trusted})"
                ),
            }],
            "validations": [{
                "expression": "object.spec.user == request.userInfo.username",
                "messageExpression": (
                    "'spec.user must be your own identity ' + request.userInfo.username"
                    " + ', not ' + object.spec.user"
                ),
                "reason": "Forbidden",
            }],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": POLICY},
        "spec": {"policyName": POLICY, "validationActions": ["Deny"]},
    }
    return [policy, binding]


def user_binding(namespace: str, user: str) -> dict[str, Any]:
    """Gives one person the user role in their own namespace."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": f"{USER_ROLE}-{user}"[:253], "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": USER_ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
