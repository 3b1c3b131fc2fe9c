#!/usr/bin/env bash
# Stops the end-to-end cluster by its recorded PIDs and undoes every change
# up.sh made to the machine: pods' sandboxes and shims, mounts, network
# namespaces, veths and bridges, iptables chains and rules, cgroups, sysctls,
# and the cluster's data directories. The logs stay in ${E2E_DIR}/logs.
# Safe to run twice, and after a failed start.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

[[ "$(id -u)" == 0 ]] || die "needs root"
started=${SECONDS}

# 1. Let the kubelet tear the pods down through the runtime (CNI DEL frees
#    their addresses and veths): stop what would recreate or reschedule pods,
#    then delete them all.
stop_pid kube-controller-manager
stop_pid kube-scheduler
if pid_alive kube-apiserver && pid_alive kubelet; then
  log "deleting every pod"
  kctl delete pods --all --all-namespaces --grace-period=1 --wait=false --request-timeout=10s >/dev/null 2>&1 || true
  for ((i = 0; i < 150; i++)); do
    n="$(kctl get pods -A --no-headers --request-timeout=5s 2>/dev/null | wc -l)"
    [[ "${n}" == 0 ]] && break
    sleep 0.2
  done
  # Then the sandboxes the kubelet still stops (it keeps dead ones for a while).
  for ((i = 0; i < 50; i++)); do
    running="$(ctr_ -n k8s.io tasks ls -q 2>/dev/null | wc -l)"
    [[ "${running}" == 0 ]] && break
    sleep 0.2
  done
fi
stop_pid kubelet 30
stop_pid kube-proxy

# 2. Whatever the kubelet left: kill and delete every task and container
#    through containerd, then stop it and any shim left behind.
if pid_alive containerd; then
  for t in $(ctr_ -n k8s.io tasks ls -q 2>/dev/null); do
    ctr_ -n k8s.io tasks kill -s SIGKILL "${t}" >/dev/null 2>&1 || true
  done
  sleep 0.5
  for t in $(ctr_ -n k8s.io tasks ls -q 2>/dev/null); do
    ctr_ -n k8s.io tasks delete -f "${t}" >/dev/null 2>&1 || true
  done
  for c in $(ctr_ -n k8s.io containers ls -q 2>/dev/null); do
    ctr_ -n k8s.io containers delete "${c}" >/dev/null 2>&1 || true
  done
fi
stop_pid containerd 15
# Shims record their PID in their bundle under containerd's state directory.
while IFS= read -r f; do
  pid="$(cat "${f}" 2>/dev/null)"
  [[ "${pid}" =~ ^[0-9]+$ ]] || continue
  if [[ "$(readlink "/proc/${pid}/exe" 2>/dev/null)" == "${CTRD_BIN}/containerd-shim-runc-v2" ]]; then
    log "stopping shim (pid ${pid})"
    kill -KILL "${pid}" 2>/dev/null || true
  fi
done < <(find "${E2E_RUN}/containerd" -name shim.pid 2>/dev/null)

# 3. The control plane.
stop_pid kube-apiserver
stop_pid etcd

# 4. Kubernetes' iptables chains (kube-proxy's, the kubelet's, CNI's) and ours.
if [[ -x "${NODE_BIN}/kube-proxy" ]]; then
  "${NODE_BIN}/kube-proxy" --cleanup >>"${LOGS}/kube-proxy-cleanup.log" 2>&1 || true
fi
ours='^(KUBE-|CNI-|'"${E2E_FW_CHAIN}"'$)'
for table in filter nat mangle raw; do
  # rules that jump to our chains from the built-in chains
  iptables -w -t "${table}" -S 2>/dev/null | awk -v re="${ours}" '$1 == "-A" && $2 !~ re { for (i = 3; i <= NF; i++) if ($i == "-j" && $(i+1) ~ re) { print; break } }' |
    while IFS= read -r rule; do
      eval "iptables -w -t ${table} ${rule/-A /-D }" 2>/dev/null || true
    done
  chains="$(iptables -w -t "${table}" -S 2>/dev/null | awk -v re="${ours}" '$1 == "-N" && $2 ~ re { print $2 }')"
  for c in ${chains}; do iptables -w -t "${table}" -F "${c}" 2>/dev/null || true; done
  for c in ${chains}; do iptables -w -t "${table}" -X "${c}" 2>/dev/null || true; done
done
conntrack -D -s "${POD_CIDR}" >/dev/null 2>&1 || true
conntrack -D -d "${POD_CIDR}" >/dev/null 2>&1 || true

# 5. Mounts under the cluster's directories (deepest first), and the pods'
#    network namespaces that did not exist before the run.
for dir in "${E2E_DATA}" "${E2E_RUN}"; do
  awk -v d="${dir}" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while IFS= read -r m; do umount -l "${m}" 2>/dev/null || true; done
done
for ns in $(ls /run/netns 2>/dev/null); do
  if [[ "${ns}" == cni-* ]] && ! grep -qx "${ns}" "${E2E_DIR}/netns.before" 2>/dev/null; then
    umount -l "/run/netns/${ns}" 2>/dev/null || true
    rm -f "/run/netns/${ns}"
  fi
done

[[ -f "${E2E_DIR}/run-netns.created" ]] && rmdir /run/netns 2>/dev/null && rm -f "${E2E_DIR}/run-netns.created"

# 6. Links: the pods' host-side veths, then the bridges.
for l in $(ip -o link show master "${E2E_BRIDGE}" 2>/dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1); do
  ip link delete "${l}" 2>/dev/null || true
done
ip link delete "${E2E_BRIDGE}" 2>/dev/null || true
ip link delete "${E2E_SVC_BRIDGE}" 2>/dev/null || true

# 7. cgroups the kubelet made (kubepods and below), in every hierarchy.
for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
  [[ -d "${h}kubepods" ]] && find "${h}kubepods" -depth -type d -exec rmdir {} + 2>/dev/null
  [[ -d "${h}kubepods.slice" ]] && find "${h}kubepods.slice" -depth -type d -exec rmdir {} + 2>/dev/null
done

# 8. Sysctls back to what they were.
if [[ -f "${E2E_DIR}/sysctl.saved" ]]; then
  while IFS= read -r kv; do sysctl -qw "${kv}" >/dev/null 2>&1 || true; done <"${E2E_DIR}/sysctl.saved"
  rm -f "${E2E_DIR}/sysctl.saved"
fi

# 9. The kubelet's links to container logs (the pod logs stay in ${E2E_DIR}/pod-logs).
for l in /var/log/containers/*.log; do
  [[ -L "${l}" && "$(readlink "${l}")" == "${E2E_DIR}/pod-logs/"* ]] && rm -f "${l}"
done
if [[ -f "${E2E_DIR}/var-log-containers.created" ]]; then
  rmdir /var/log/containers 2>/dev/null && rm -f "${E2E_DIR}/var-log-containers.created"
fi

# 10. The cluster's data (the logs stay).
rm -rf "${E2E_DATA}" "${E2E_RUN}"
rm -rf "${PIDS}"

# What is left, if anything, is an error worth seeing.
left=0
for p in "${PIDS}"/*.pid; do [[ -f "${p}" ]] && left=1; done
ip link show "${E2E_BRIDGE}" >/dev/null 2>&1 && { log "bridge ${E2E_BRIDGE} is still there"; left=1; }
if iptables -w -S 2>/dev/null | grep -qE -- "-N (KUBE-|CNI-|${E2E_FW_CHAIN})" ||
  iptables -w -t nat -S 2>/dev/null | grep -qE -- "-N (KUBE-|CNI-)"; then
  log "iptables chains of the cluster are still there"
  left=1
fi
if grep -qE " (${E2E_DATA}|${E2E_RUN})[/ ]" /proc/self/mountinfo; then
  log "mounts of the cluster are still there"
  left=1
fi
log "cluster down in $((SECONDS - started))s$( ((left)) && echo ', with leftovers (above)'); logs kept in ${LOGS}"
exit "${left}"
