#!/usr/bin/env bash
# Starts the one-node end-to-end cluster from the binaries hack/e2e/build.sh
# made: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# containerd, kubelet and kube-proxy (iptables mode), then loads the sandbox
# and operator images into containerd. Every PID is recorded in ${E2E_DIR}/pids
# and every log is in ${E2E_DIR}/logs; hack/e2e/down.sh undoes all of it.
# The admin kubeconfig is ${E2E_DIR}/admin.kubeconfig.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[[ "$(id -u)" == 0 ]] || die "the end-to-end cluster needs root (kubelet, containerd, iptables)"
if [[ -d "${PIDS}" ]] && compgen -G "${PIDS}/*.pid" >/dev/null; then
  die "a cluster is already up (${PIDS}); run make e2e-down first"
fi
for b in "${K8S_BIN}"/{kube-apiserver,kube-controller-manager,kubectl,etcd} "${NODE_BIN}"/{kubelet,kube-scheduler,kube-proxy} \
  "${CTRD_BIN}"/{containerd,containerd-shim-runc-v2,ctr} "${IMAGES}/pause.tar" "${IMAGES}/gmsa-operator.tar" \
  "${IMAGES}"/{olm,opm,coredns}.{tar,ref} "${E2E_BIN}/olm.yaml"; do
  [[ -e "${b}" ]] || die "missing ${b}: run hack/e2e/build.sh (make e2e-up does)"
done

started=${SECONDS}
rm -rf "${E2E_DIR}"
mkdir -p "${LOGS}" "${PIDS}" "${PKI}" "${E2E_DATA}" "${E2E_RUN}"
trap 'rc=$?; if ((rc)); then log "start failed"; print_logs; fi' EXIT

# --- state to restore: sysctls, network namespaces that already exist ---
for s in "${E2E_SYSCTLS[@]}"; do
  v="$(sysctl -n "${s}" 2>/dev/null)" && printf '%s=%s\n' "${s}" "${v}" >>"${E2E_DIR}/sysctl.saved"
done
ls /run/netns 2>/dev/null >"${E2E_DIR}/netns.before" || touch "${E2E_DIR}/run-netns.created"
# The kubelet links every container log into /var/log/containers (a fixed path).
[[ -d /var/log/containers ]] || touch "${E2E_DIR}/var-log-containers.created"

# --- certificates: one CA for the cluster, one for the front proxy ---
gen_ca() { # gen_ca NAME CN
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$2" \
    -keyout "${PKI}/$1.key" -out "${PKI}/$1.crt" 2>/dev/null
}
gen_cert() { # gen_cert NAME CA SUBJECT EXT SAN
  local name="$1" ca="$2" subj="$3" ext="$4" san="${5:-}"
  openssl req -newkey rsa:2048 -nodes -subj "${subj}" -keyout "${PKI}/${name}.key" -out "${PKI}/${name}.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=${ext}"
    [[ -n "${san}" ]] && echo "subjectAltName=${san}"
  } >"${PKI}/${name}.ext"
  openssl x509 -req -in "${PKI}/${name}.csr" -CA "${PKI}/${ca}.crt" -CAkey "${PKI}/${ca}.key" -CAcreateserial \
    -days 2 -extfile "${PKI}/${name}.ext" -out "${PKI}/${name}.crt" 2>/dev/null
  rm -f "${PKI}/${name}.csr" "${PKI}/${name}.ext"
}
gen_ca ca gmsa-e2e-ca
gen_ca front-proxy-ca gmsa-e2e-front-proxy-ca
gen_cert apiserver ca "/CN=kube-apiserver" serverAuth \
  "IP:127.0.0.1,IP:${NODE_IP},IP:${KUBERNETES_SVC_IP},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
gen_cert apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
gen_cert front-proxy-client front-proxy-ca "/CN=front-proxy-client" clientAuth
gen_cert admin ca "/O=system:masters/CN=gmsa-e2e-admin" clientAuth
gen_cert kube-controller-manager ca "/CN=system:kube-controller-manager" clientAuth
gen_cert kube-scheduler ca "/CN=system:kube-scheduler" clientAuth
gen_cert kube-proxy ca "/CN=system:kube-proxy" clientAuth
gen_cert kubelet ca "/O=system:nodes/CN=system:node:${NODE_NAME}" clientAuth
gen_cert kubelet-serving ca "/CN=${NODE_NAME}" serverAuth "IP:${NODE_IP},DNS:${NODE_NAME}"
openssl genrsa -out "${PKI}/sa.key" 2048 2>/dev/null
openssl rsa -in "${PKI}/sa.key" -pubout -out "${PKI}/sa.pub" 2>/dev/null

kubeconfig() { # kubeconfig NAME CERT
  cat >"${E2E_DIR}/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: gmsa-e2e
  cluster:
    server: https://${NODE_IP}:6443
    certificate-authority: ${PKI}/ca.crt
users:
- name: $2
  user:
    client-certificate: ${PKI}/$2.crt
    client-key: ${PKI}/$2.key
contexts:
- name: gmsa-e2e
  context: {cluster: gmsa-e2e, user: $2}
current-context: gmsa-e2e
EOF
}
for c in admin kube-controller-manager kube-scheduler kube-proxy kubelet; do kubeconfig "${c}" "${c}"; done

# start NAME CMD...: run in the background with its log, record the PID.
start() {
  local name="$1"
  shift
  "$@" >"${LOGS}/${name}.log" 2>&1 &
  echo $! >"${PIDS}/${name}.pid"
}
# wait_for WHAT TIMEOUT CMD...: poll CMD every 0.2 s.
wait_for() {
  local what="$1" timeout="$2" i
  shift 2
  for ((i = 0; i < timeout * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "${what} not ready after ${timeout}s"
}

# --- network: two bridges, a route for the Service range, forwarding only between them ---
ip link add "${E2E_BRIDGE}" type bridge
ip addr add "${NODE_IP}/24" dev "${E2E_BRIDGE}"
ip link set "${E2E_BRIDGE}" up
ip link add "${E2E_SVC_BRIDGE}" type bridge
ip link set "${E2E_SVC_BRIDGE}" up
ip route add "${SVC_CIDR}" dev "${E2E_SVC_BRIDGE}" src "${NODE_IP}"
# Pods reach each other and the node through the host (Service DNAT), so the
# host forwards; nothing from or to the pod range leaves through any other link.
iptables -w -N "${E2E_FW_CHAIN}"
iptables -w -A "${E2E_FW_CHAIN}" -i "${E2E_BRIDGE}" -o "${E2E_BRIDGE}" -j ACCEPT
iptables -w -A "${E2E_FW_CHAIN}" -s "${POD_CIDR}" -j DROP
iptables -w -A "${E2E_FW_CHAIN}" -d "${POD_CIDR}" -j DROP
iptables -w -I FORWARD 1 -j "${E2E_FW_CHAIN}"
modprobe br_netfilter 2>/dev/null || true
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
mkdir -p "${E2E_DIR}/cni/net.d"
cat >"${E2E_DIR}/cni/net.d/10-gmsa-e2e.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "gmsa-e2e",
  "plugins": [{
    "type": "bridge",
    "bridge": "${E2E_BRIDGE}",
    "isGateway": true,
    "isDefaultGateway": false,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {
      "type": "host-local",
      "dataDir": "${E2E_DATA}/cni",
      "ranges": [[{"subnet": "${POD_CIDR}", "rangeStart": "${POD_CIDR%.0/24}.10", "gateway": "${NODE_IP}"}]],
      "routes": [{"dst": "${SVC_CIDR}"}]
    }
  }]
}
EOF

# --- etcd, kube-apiserver ---
start etcd "${K8S_BIN}/etcd" --name gmsa-e2e --data-dir "${E2E_DATA}/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster gmsa-e2e=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
  --unsafe-no-fsync
cat >"${E2E_DIR}/apiserver.args" <<EOF
--etcd-servers=http://127.0.0.1:2379
--bind-address=${NODE_IP}
--advertise-address=${NODE_IP}
--secure-port=6443
--service-cluster-ip-range=${SVC_CIDR}
--tls-cert-file=${PKI}/apiserver.crt
--tls-private-key-file=${PKI}/apiserver.key
--client-ca-file=${PKI}/ca.crt
--kubelet-client-certificate=${PKI}/apiserver-kubelet-client.crt
--kubelet-client-key=${PKI}/apiserver-kubelet-client.key
--kubelet-preferred-address-types=InternalIP
--service-account-issuer=https://kubernetes.default.svc.cluster.local
--service-account-key-file=${PKI}/sa.pub
--service-account-signing-key-file=${PKI}/sa.key
--requestheader-client-ca-file=${PKI}/front-proxy-ca.crt
--requestheader-allowed-names=front-proxy-client
--requestheader-extra-headers-prefix=X-Remote-Extra-
--requestheader-group-headers=X-Remote-Group
--requestheader-username-headers=X-Remote-User
--proxy-client-cert-file=${PKI}/front-proxy-client.crt
--proxy-client-key-file=${PKI}/front-proxy-client.key
--authorization-mode=Node,RBAC
--enable-admission-plugins=NodeRestriction
--allow-privileged=true
--profiling=false
EOF
# apiserver.sh runs it from apiserver.args, so a test can restart it the same way.
cat >"${E2E_DIR}/apiserver.sh" <<EOF
#!/usr/bin/env bash
exec "${K8S_BIN}/kube-apiserver" \$(cat "${E2E_DIR}/apiserver.args")
EOF
chmod +x "${E2E_DIR}/apiserver.sh"
wait_for etcd 30 curl -sf http://127.0.0.1:2381/health
start kube-apiserver "${E2E_DIR}/apiserver.sh"
wait_for kube-apiserver 90 kctl get --raw /readyz

# --- kube-controller-manager, kube-scheduler ---
start kube-controller-manager "${K8S_BIN}/kube-controller-manager" \
  --kubeconfig "${E2E_DIR}/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig "${E2E_DIR}/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig "${E2E_DIR}/kube-controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port 10257 --leader-elect=false \
  --use-service-account-credentials --service-account-private-key-file "${PKI}/sa.key" \
  --root-ca-file "${PKI}/ca.crt" --cluster-signing-cert-file "${PKI}/ca.crt" --cluster-signing-key-file "${PKI}/ca.key" \
  --allocate-node-cidrs=false --controllers '*'
start kube-scheduler "${NODE_BIN}/kube-scheduler" \
  --kubeconfig "${E2E_DIR}/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig "${E2E_DIR}/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig "${E2E_DIR}/kube-scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false

# --- containerd ---
mkdir -p "${E2E_RUN}/containerd"
cat >"${E2E_DIR}/containerd.toml" <<EOF
version = 3
root = "${E2E_DATA}/containerd"
state = "${E2E_RUN}/containerd"
[grpc]
  address = "${CTRD_SOCK}"
[ttrpc]
  address = "${CTRD_SOCK}.ttrpc"
[debug]
  address = "${CTRD_SOCK}.debug"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "${PAUSE_IMAGE}"
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "${E2E_DIR}/cni/net.d"
[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
EOF
PATH="${CTRD_BIN}:${PATH}" start containerd "${CTRD_BIN}/containerd" --config "${E2E_DIR}/containerd.toml"
wait_for containerd 30 ctr_ version
ctr_ -n k8s.io images import --local "${IMAGES}/pause.tar" >/dev/null
ctr_ -n k8s.io images import --local "${IMAGES}/gmsa-operator.tar" >/dev/null
# OLM's images are referenced by digest (name@sha256:...), or OLM makes the
# kubelet pull them: --digests records that name too. The digest is the one
# of the manifest containerd stores (it converts the tarball's), so it is
# read back here.
for i in olm opm coredns; do
  ctr_ -n k8s.io images import --local --digests --base-name "${IMAGE_REPO}/${i}" "${IMAGES}/${i}.tar" >/dev/null
done
by_digest() { # by_digest NAME: repo@digest of the imported NAME.ref
  local ref d
  ref="$(cat "${IMAGES}/$1.ref")"
  d="$(ctr_ -n k8s.io images ls "name==${ref}" | awk 'NR == 2 {print $3}')"
  [[ "${d}" == sha256:* ]] || die "no digest for ${ref}"
  echo "${ref%:*}@${d}"
}

# --- kubelet ---
touch "${E2E_DIR}/resolv.conf" # pods get no name server: nothing outside is reachable anyway
cat >"${E2E_DIR}/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine: cgroup v1, and root without CAP_SYS_RESOURCE.
failCgroupV1: false
cgroupDriver: cgroupfs
oomScoreAdj: 0
# syncFrequency is left at its default (1m) on purpose: Secret updates reach
# pods as late as on a real cluster.
containerRuntimeEndpoint: unix://${CTRD_SOCK}
address: ${NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: ${PKI}/kubelet-serving.crt
tlsPrivateKeyFile: ${PKI}/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${PKI}/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [${CLUSTER_DNS_IP}]
resolvConf: ${E2E_DIR}/resolv.conf
podLogsDir: ${E2E_DIR}/pod-logs
failSwapOn: false
serializeImagePulls: false
evictionHard:
  memory.available: 100Mi
  nodefs.available: 2%
  imagefs.available: 2%
EOF
start kubelet "${NODE_BIN}/kubelet" --config "${E2E_DIR}/kubelet.yaml" \
  --kubeconfig "${E2E_DIR}/kubelet.kubeconfig" --root-dir "${E2E_DATA}/kubelet" \
  --hostname-override "${NODE_NAME}" --node-ip "${NODE_IP}"

# --- kube-proxy ---
cat >"${E2E_DIR}/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: ${E2E_DIR}/kube-proxy.kubeconfig}
hostnameOverride: ${NODE_NAME}
bindAddress: ${NODE_IP}
clusterCIDR: ${POD_CIDR}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
oomScoreAdj: 0
nodePortAddresses: ["${POD_CIDR}"]
iptables: {localhostNodePorts: false}
# 0 leaves the machine's conntrack settings alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
start kube-proxy "${NODE_BIN}/kube-proxy" --config "${E2E_DIR}/kube-proxy.yaml"

wait_for "node ${NODE_NAME}" 120 kctl wait --for=condition=Ready "node/${NODE_NAME}" --timeout=1s
wait_for "default service account" 60 kctl get serviceaccount default -n default

# --- CoreDNS, then OLM (rendered by build.sh from the module's deploy/chart) ---
sed -e "s|IMAGE|$(cat "${IMAGES}/coredns.ref")|; s|CLUSTER_DNS|${CLUSTER_DNS_IP}|" "${root}/hack/e2e/addons/coredns.yaml" |
  kctl apply -f - >/dev/null
# The CRDs first: the same file holds objects of those kinds.
sed -e "s|OLM_IMAGE_BY_DIGEST|$(by_digest olm)|g; s|OPM_IMAGE_BY_DIGEST|$(by_digest opm)|g" "${E2E_BIN}/olm.yaml" >"${E2E_DIR}/olm.yaml"
kctl apply --server-side -f "${E2E_DIR}/olm.yaml" >/dev/null 2>&1 || true
kctl wait --for=condition=Established crd --all --timeout=60s >/dev/null
kctl apply --server-side --force-conflicts -f "${E2E_DIR}/olm.yaml" >/dev/null
kctl rollout status -n kube-system deployment/coredns --timeout=120s >/dev/null
kctl rollout status -n "${OLM_NS}" deployment/olm-operator --timeout=180s >/dev/null
kctl rollout status -n "${OLM_NS}" deployment/catalog-operator --timeout=180s >/dev/null
# The package server is an aggregated API: until it serves, discovery is
# incomplete and deleting a namespace waits.
wait_for "OLM's packageserver" 180 kctl wait --for=condition=Available apiservice/v1.packages.operators.coreos.com --timeout=1s
log "CoreDNS and OLM ${OLM_VERSION} up after $((SECONDS - started))s"
log "cluster up in $((SECONDS - started))s; export KUBECONFIG=${KUBECONFIG_ADMIN}"
log "operator image: $(cat "${IMAGES}/gmsa-operator.ref"); logs: ${LOGS}"
