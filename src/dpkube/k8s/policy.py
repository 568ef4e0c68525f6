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

from dpkube.k8s.budgets import GRANT_LABEL
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


def operator_rules() -> list[dict[str, Any]]:
    """What the operator does wherever queries live: read and settle queries, run their pods, publish results,
    give query pods their (tokenless) service account and NetworkPolicy, and copy dataset credentials and plugin
    packages next to them."""
    return [
        {"apiGroups": [GROUP], "resources": ["dpqueries"], "verbs": ["get", "list", "watch", "patch", "delete"]},
        {"apiGroups": [GROUP], "resources": ["experiments"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": [GROUP], "resources": ["dpqueries/status", "experiments/status"], "verbs": ["patch"]},
        {"apiGroups": [GROUP], "resources": ["queues", "datasets"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "update"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "create", "update", "delete"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["create"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["get", "create", "update"]},
    ]


def operator_system_rules() -> list[dict[str, Any]]:
    """What the operator does in its own namespace: move budgets and experiment caps (deleted with their
    experiment), count queues and datasets, hold its lease."""
    return [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "update", "delete"]},
        {"apiGroups": [GROUP], "resources": ["queues/status", "datasets/status"], "verbs": ["patch"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
    ]


def api_rules() -> list[dict[str, Any]]:
    """What the facade does in its query namespace: create its users' queries and experiments and read them back,
    give experiments made with kubectl a Dioptra id, keep Dioptra workflows as ConfigMaps, read large results."""
    return [
        {"apiGroups": [GROUP], "resources": ["dpqueries"], "verbs": ["create", "get", "list", "watch"]},
        {"apiGroups": [GROUP], "resources": ["experiments"], "verbs": ["create", "get", "list", "patch"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "patch", "delete"]},
    ]


def api_system_rules(token_secret: str, id_counters: str) -> list[dict[str, Any]]:
    """What the facade does in the system namespace: read grants, datasets and its token store, create and lock
    Dioptra queues, store plugin packages and Dioptra's id counters. Budget grants stay out of its reach:
    the `grant_guard_policy` refuses its writes to them."""
    return [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch", "create", "delete"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [id_counters], "verbs": ["update"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [token_secret], "verbs": ["get"]},
        {"apiGroups": [GROUP], "resources": ["datasets"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [GROUP], "resources": ["queues"], "verbs": ["get", "list", "watch", "create", "patch"]},
    ]


def api_cluster_rules() -> list[dict[str, Any]]:
    """The facade checks cluster tokens of kubectl users (TokenReview), and nothing else cluster-wide."""
    return [{"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}]


def cel_list(values: list[str]) -> str:
    """A CEL list literal of strings (JSON's syntax is CEL's)."""
    return json.dumps(values, separators=(",", ":"))


def _policy(name: str, rule: dict[str, Any], variables: dict[str, str],
            validation: dict[str, Any]) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy (CEL, no webhook) with its Deny binding; who is exempt lives in `variables`,
    so that an installer (the Helm chart) fills in its own identities without touching the expressions."""
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [rule]},
            "variables": [{"name": key, "expression": value} for key, value in variables.items()],
            "validations": [validation],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }
    return [policy, binding]


def query_owner_policy(trusted_service_accounts: list[str], admins_group: str = ADMINS_GROUP,
                       name: str = POLICY) -> list[dict[str, Any]]:
    """The admission policy that makes spec.user the caller's own identity.

    Exempt: cluster admins (system:masters), dpkube admins (`admins_group`), and the given service
    accounts (the facade, which authenticates users itself, and the operator).
    """
    return _policy(
        name,
        {"apiGroups": [GROUP], "apiVersions": [VERSION], "operations": ["CREATE", "UPDATE"],
         "resources": ["dpqueries"]},
        {"trusted": cel_list(trusted_service_accounts), "adminsGroup": json.dumps(admins_group)},
        {
            "expression": (
                "request.userInfo.groups.exists(g, g == 'system:masters' || g == variables.adminsGroup)"
                " || request.userInfo.username in variables.trusted"
                " || object.spec.user == request.userInfo.username"
            ),
            "messageExpression": (
                "'spec.user must be your own identity ' + request.userInfo.username"
                " + ', not ' + object.spec.user"
            ),
            "reason": "Forbidden",
        },
    )


GRANT_GUARD = "dpkube-budget-grants"


def grant_guard_policy(guarded_users: list[str], name: str = GRANT_GUARD) -> list[dict[str, Any]]:
    """The admission policy that refuses the given users any write to a budget grant.

    The facade must create and delete ConfigMaps in the system namespace (Dioptra plugins, id counters),
    and RBAC cannot tell a grant from a plugin; this policy can, by the grant label.
    """
    untouched = (
        "(object == null || !has(object.metadata.labels) || !('" + GRANT_LABEL + "' in object.metadata.labels))"
        " && (oldObject == null || !has(oldObject.metadata.labels)"
        " || !('" + GRANT_LABEL + "' in oldObject.metadata.labels))"
    )
    return _policy(
        name,
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE", "DELETE"],
         "resources": ["configmaps"]},
        {"guarded": cel_list(guarded_users)},
        {"expression": f"!(request.userInfo.username in variables.guarded) || ({untouched})",
         "message": "budget grants are changed by admins and the operator only", "reason": "Forbidden"},
    )


def user_binding(namespace: str, user: str) -> dict[str, Any]:
    """Gives one person the user role in their own namespace."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": f"{USER_ROLE}-{user}"[:253], "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": USER_ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
