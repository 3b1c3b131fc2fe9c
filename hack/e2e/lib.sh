# Shared settings of the end-to-end cluster (sourced by hack/e2e/*.sh).
#
# Everything the cluster changes on the machine is named here, so that
# down.sh can undo exactly that:
#   processes  PIDs in ${E2E_DIR}/pids/<component>.pid
#   files      ${E2E_DIR} (run state, certificates, logs), ${E2E_DATA} and ${E2E_RUN}
#   network    bridges ${E2E_BRIDGE} (pods) and ${E2E_SVC_BRIDGE} (the Service range, no ports),
#              the pods' veths and network namespaces, iptables chains KUBE-* and CNI-*
#              and the rule chain ${E2E_FW_CHAIN}
#   kernel     the sysctls listed in E2E_SYSCTLS, restored from ${E2E_DIR}/sysctl.saved
#   cgroups    kubepods in every cgroup hierarchy
# shellcheck shell=bash

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export GOTOOLCHAIN=local

KUBE_VERSION="${KUBE_VERSION:-1.37.1}"
CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.4.2}"
# Pinned by hack/tools/{olm,coredns}/go.mod; these name the cache and the images.
OLM_VERSION=v0.46.0
OPM_VERSION=v1.73.0
COREDNS_VERSION=v1.15.0
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
os="$(go env GOOS)"
arch="$(go env GOARCH)"

# Binaries: the control plane shared with the envtest suites, and the node's own.
K8S_BIN="${root}/bin/k8s/${KUBE_VERSION}-${os}-${arch}"
E2E_BIN="${root}/bin/e2e"
NODE_BIN="${E2E_BIN}/kube-${KUBE_VERSION}-${os}-${arch}"
CTRD_BIN="${E2E_BIN}/containerd-${CONTAINERD_VERSION}-${os}-${arch}"
IMAGES="${E2E_BIN}/images"
OLM_BIN="${E2E_BIN}/olm-${OLM_VERSION}-${os}-${arch}"

# Run state, logs and the machine's directories of this cluster.
E2E_DIR="${E2E_DIR:-/tmp/gmsa-e2e}"
E2E_DATA="/var/lib/gmsa-e2e"
E2E_RUN="/run/gmsa-e2e"
LOGS="${E2E_DIR}/logs"
PIDS="${E2E_DIR}/pids"
PKI="${E2E_DIR}/pki"
KUBECONFIG_ADMIN="${E2E_DIR}/admin.kubeconfig"
CTRD_SOCK="${E2E_RUN}/containerd/containerd.sock"

# Network: pods on a bridge this run creates; the Service range is routed to
# a second bridge with no ports, so ClusterIP traffic never leaves the machine.
# The node's address (API server, kubelet) is the pod bridge's gateway.
E2E_BRIDGE=gmsae2e0
E2E_SVC_BRIDGE=gmsae2esvc
E2E_FW_CHAIN=GMSA-E2E-FORWARD
POD_CIDR=10.217.0.0/24
NODE_IP=10.217.0.1
SVC_CIDR=10.217.1.0/24
KUBERNETES_SVC_IP=10.217.1.1
CLUSTER_DNS_IP=10.217.1.10
OLM_NS=operator-lifecycle-manager
NODE_NAME=gmsa-e2e-node

# Image references that are never pulled (.invalid never resolves).
IMAGE_REPO=gmsa-e2e.invalid
PAUSE_IMAGE="${IMAGE_REPO}/pause:1"

# Sysctls that the run (ip_forward) or the kubelet and kube-proxy may change.
E2E_SYSCTLS=(
  net.ipv4.ip_forward
  net.ipv4.conf.all.route_localnet
  net.bridge.bridge-nf-call-iptables
  net.netfilter.nf_conntrack_max
  net.netfilter.nf_conntrack_tcp_timeout_established
  net.netfilter.nf_conntrack_tcp_timeout_close_wait
  vm.overcommit_memory
  vm.panic_on_oom
  kernel.panic
  kernel.panic_on_oops
  kernel.keys.root_maxkeys
  kernel.keys.root_maxbytes
)

log() { echo "e2e: $*" >&2; }
die() { log "$*"; exit 1; }

# pid_alive NAME: the recorded process of NAME is running.
pid_alive() {
  local f="${PIDS}/$1.pid"
  [[ -f "${f}" ]] && kill -0 "$(cat "${f}")" 2>/dev/null
}

# stop_pid NAME [TIMEOUT]: SIGTERM the recorded PID, SIGKILL after TIMEOUT s.
stop_pid() {
  local name="$1" timeout="${2:-15}" f="${PIDS}/$1.pid" pid i
  [[ -f "${f}" ]] || return 0
  pid="$(cat "${f}")"
  if kill -0 "${pid}" 2>/dev/null; then
    log "stopping ${name} (pid ${pid})"
    kill -TERM "${pid}" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
      kill -0 "${pid}" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "${pid}" 2>/dev/null; then
      log "${name} (pid ${pid}) did not stop in ${timeout}s: SIGKILL"
      kill -KILL "${pid}" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "${f}"
}

kctl() { "${K8S_BIN}/kubectl" --kubeconfig "${KUBECONFIG_ADMIN}" "$@"; }
ctr_() { "${CTRD_BIN}/ctr" --address "${CTRD_SOCK}" "$@"; }

# print_logs: the tail of every component's log (on failure).
print_logs() {
  local f
  for f in "${LOGS}"/*.log; do
    [[ -f "${f}" ]] || continue
    echo "===== ${f} (last 40 lines) =====" >&2
    tail -n 40 "${f}" >&2
  done
  echo "e2e: full logs of every component are in ${LOGS}" >&2
}
