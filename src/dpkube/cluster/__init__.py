"""A real single-node Kubernetes cluster on this machine: the local control plane, plus kube-controller-manager,
kube-scheduler, a kubelet on a private containerd with runc and a CNI bridge, kube-proxy, CoreDNS and
kube-router's NetworkPolicy controller, all built from source and stopped by PID (`dpkube cluster up/down`)."""
