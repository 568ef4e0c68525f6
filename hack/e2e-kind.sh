#!/usr/bin/env bash
# The end-to-end suite (tests/e2e) against the Helm chart on a throwaway kind cluster, over a port-forward.
# Needs Docker (with a running engine), kind, helm, kubectl and curl, and the repo's venv (`make install`).
# Extra arguments go to pytest, e.g. `hack/e2e-kind.sh -x -k sql`. The cluster is always deleted at the end.
set -euo pipefail

CLUSTER="${CLUSTER:-dpkube-e2e}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.34.0}"  # Kubernetes v1.34, as the local control plane
IMAGE="dpkube:e2e"
NAMESPACE="dpkube-system"
E2E_USER="e2e"
VENV=".venv"

cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "e2e-kind: $*" >&2; exit 1; }

missing=()
for tool in docker kind helm kubectl curl; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (this target needs Docker, kind, helm, kubectl and curl)"
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed)"
[[ -x "$VENV/bin/dpkube" ]] || die "no $VENV/bin/dpkube: run \`make install\` first"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    die "a kind cluster named $CLUSTER already exists; delete it (kind delete cluster --name $CLUSTER) or set CLUSTER"
fi

WORK="$(mktemp -d)"
export KUBECONFIG="$WORK/kubeconfig"  # the cluster's own kubeconfig: ~/.kube/config is left alone
PF_PID=""

cleanup() {
    local status=$?
    if ((status != 0)) && kubectl get namespace "$NAMESPACE" >/dev/null 2>&1; then
        echo "e2e-kind: failed ($status); the platform's state and logs:" >&2
        kubectl get pods --all-namespaces >&2 || true
        kubectl -n "$NAMESPACE" logs deployment/dpkube-operator --tail=100 >&2 || true
        kubectl -n "$NAMESPACE" logs deployment/dpkube-api --tail=100 >&2 || true
        [[ -f "$WORK/port-forward.log" ]] && cat "$WORK/port-forward.log" >&2
    fi
    if [[ -n "$PF_PID" ]]; then
        kill "$PF_PID" 2>/dev/null || true
        wait "$PF_PID" 2>/dev/null || true
    fi
    kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" || true
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

kind create cluster --name "$CLUSTER" --image "$KIND_NODE_IMAGE" --kubeconfig "$KUBECONFIG" --wait 120s
make image IMAGE="$IMAGE"
kind load docker-image "$IMAGE" --name "$CLUSTER"
helm install dpkube charts/dpkube --namespace "$NAMESPACE" --create-namespace \
    --set image.repository=dpkube --set image.tag=e2e --set image.pullPolicy=Never \
    --set demo.datasets=true --wait --timeout 10m

# The e2e user's budget on PENGUIN, and tokens for the facade (admins' CLI, with the kind kubeconfig).
"$VENV/bin/dpkube" budget grant "$E2E_USER" PENGUIN --epsilon 10 --delta 0.005 --kubeconfig "$KUBECONFIG"
TOKEN="$("$VENV/bin/dpkube" token create "$E2E_USER" --kubeconfig "$KUBECONFIG")"
ADMIN_TOKEN="$("$VENV/bin/dpkube" token create "$E2E_USER-admin" --admin --kubeconfig "$KUBECONFIG")"

PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"
kubectl -n "$NAMESPACE" port-forward svc/dpkube-api "$PORT:80" >"$WORK/port-forward.log" 2>&1 &
PF_PID=$!
for _ in $(seq 60); do
    curl -fsS -o /dev/null --max-time 2 "$URL/readyz" && break
    kill -0 "$PF_PID" 2>/dev/null || die "kubectl port-forward exited"
    sleep 1
done
curl -fsS -o /dev/null --max-time 2 "$URL/readyz" || die "the facade at $URL (port-forward) never answered /readyz"

DPKUBE_E2E_URL="$URL" DPKUBE_E2E_TOKEN="$TOKEN" DPKUBE_E2E_USER="$E2E_USER" DPKUBE_E2E_ADMIN_TOKEN="$ADMIN_TOKEN" \
    "$VENV/bin/pytest" tests/e2e -m e2e "$@"
