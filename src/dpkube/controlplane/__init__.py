"""A local control plane (etcd + kube-apiserver on loopback) and the binaries it runs."""
