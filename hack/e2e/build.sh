#!/usr/bin/env bash
# Builds, once per version, every binary and image the end-to-end cluster
# needs, from the Go module proxy and Debian's packages only:
#   - the control plane (kube-apiserver, kube-controller-manager, kubectl, etcd): make control-plane
#   - kubelet, kube-scheduler, kube-proxy v${KUBE_VERSION} (hack/tools/kubenode)
#   - containerd, its runc shim and ctr ${CONTAINERD_VERSION}
#   - runc, the CNI plugins, conntrack and iptables from Debian, when missing
#   - the sandbox image (hack/e2e/pause) and the operator's image (make build-cross
#     + hack/ociimage), as image tarballs under bin/e2e/images
# A second run reuses everything whose inputs did not change.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

mkdir -p "${NODE_BIN}" "${CTRD_BIN}" "${IMAGES}"

# Debian packages (root only; CI runs as root).
need=()
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] || need+=(containernetworking-plugins)
command -v conntrack >/dev/null || need+=(conntrack)
command -v iptables >/dev/null || need+=(iptables)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
  log "installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

make -C "${root}" --no-print-directory control-plane

stamp() { sha256sum "$@" | sha256sum | cut -c1-16; }

# gobuild NAME DIR PKG LDFLAGS OUTDIR: build unless the output's stamp matches.
gobuild() {
  local name="$1" dir="$2" pkg="$3" ldflags="$4" out="$5" want
  want="$(stamp "${dir}/go.mod" "${dir}/go.sum")"
  if [[ -x "${out}/${name}" && "$(cat "${out}/.${name}.stamp" 2>/dev/null)" == "${want}" ]]; then
    return
  fi
  log "building ${name} (minutes the first time)"
  local start=${SECONDS}
  (cd "${dir}" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "${ldflags}" -o "${out}/${name}.tmp" "${pkg}")
  mv "${out}/${name}.tmp" "${out}/${name}"
  echo "${want}" >"${out}/.${name}.stamp"
  log "built ${name} in $((SECONDS - start))s"
}

vpkg=k8s.io/component-base/version
minor="$(echo "${KUBE_VERSION}" | cut -d. -f2)"
kube_ldflags="-s -w -X ${vpkg}.gitVersion=v${KUBE_VERSION} -X ${vpkg}.gitMajor=1 -X ${vpkg}.gitMinor=${minor} -X ${vpkg}.gitTreeState=clean"
kubenode="${root}/hack/tools/kubenode"
for c in kubelet kube-scheduler kube-proxy; do
  gobuild "${c}" "${kubenode}" "k8s.io/kubernetes/cmd/${c}" "${kube_ldflags}" "${NODE_BIN}"
done

# containerd: go install at an exact version (its go.mod has no replace lines
# that stop that); btrfs needs cgo, so it is left out.
if [[ ! -x "${CTRD_BIN}/containerd" || ! -x "${CTRD_BIN}/containerd-shim-runc-v2" || ! -x "${CTRD_BIN}/ctr" ]]; then
  log "building containerd ${CONTAINERD_VERSION} (about a minute the first time)"
  start=${SECONDS}
  m=github.com/containerd/containerd/v2
  v="${CONTAINERD_VERSION#v}"
  GOBIN="${CTRD_BIN}" CGO_ENABLED=0 GOFLAGS= go install -trimpath -tags no_btrfs \
    -ldflags "-s -w -X ${m}/version.Version=${v}" \
    "${m}/cmd/containerd@${CONTAINERD_VERSION}" "${m}/cmd/containerd-shim-runc-v2@${CONTAINERD_VERSION}" "${m}/cmd/ctr@${CONTAINERD_VERSION}"
  log "built containerd in $((SECONDS - start))s"
fi

# The image assembler (go-containerregistry).
ociimage_dir="${root}/hack/ociimage"
gobuild ociimage "${ociimage_dir}" . "-s -w" "${E2E_BIN}"
ociimage="${E2E_BIN}/ociimage"

# The sandbox image.
pause_out="${IMAGES}/pause"
mkdir -p "${pause_out}"
(cd "${root}" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${pause_out}/pause" ./hack/e2e/pause)
"${ociimage}" -arch "${arch}" -tag "${PAUSE_IMAGE}" -out "${IMAGES}/pause.tar" \
  -file "${pause_out}/pause:/pause" -user 65535:65535 -entrypoint /pause >/dev/null

# The operator's image: the binaries of make build-cross, laid out as the
# Dockerfile lays them out.
make -C "${root}" --no-print-directory build-cross ARCHS="${arch}"
bins="${root}/bin/linux-${arch}"
tag="e2e-$(stamp "${bins}/manager" "${bins}/webhook" | cut -c1-12)"
ref="${IMAGE_REPO}/gmsa-operator:${tag}"
"${ociimage}" -arch "${arch}" -tag "${ref}" -out "${IMAGES}/gmsa-operator.tar" \
  -file "${bins}/manager:/manager" -file "${bins}/webhook:/webhook" \
  -user 65532:65532 -entrypoint /manager >/dev/null
echo "${ref}" >"${IMAGES}/gmsa-operator.ref"
log "images ready: ${PAUSE_IMAGE}, ${ref}"
