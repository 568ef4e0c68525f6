#!/usr/bin/env bash
# Installs what the image build and the real cluster (`dpkube cluster up`, tests/cluster) need from
# Debian's packages: the Docker engine, containerd and runc, the CNI plugins, mmdebstrap (the base image),
# iptables, conntrack and ipset (kube-proxy, the NetworkPolicy engine), gcc's static libc (the pause
# image), chromium and chromium-driver (the dashboard's browser tests, driven by Selenium). Everything
# else (Kubernetes, CoreDNS, kube-router) is built from the Go module proxy.
# Idempotent: a machine that has them all installs nothing. Services are never started here.
set -euo pipefail

PACKAGES=(docker.io containerd runc containernetworking-plugins mmdebstrap iptables conntrack ipset
          iproute2 gcc libc6-dev chromium chromium-driver)

die() { echo "prereqs: $*" >&2; exit 1; }

missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]} == 0)); then
    echo "prereqs: all installed (${PACKAGES[*]})"
    exit 0
fi

command -v apt-get >/dev/null 2>&1 \
    || die "missing ${missing[*]} and no apt-get here: install them with your system's package manager (Debian names)"
((EUID == 0)) || die "missing ${missing[*]}: run \`make prereqs\` as root, or \`sudo apt-get install ${missing[*]}\`"

echo "prereqs: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "prereqs: installed ${missing[*]}"
