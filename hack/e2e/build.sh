#!/usr/bin/env bash
# Builds, once per version, every binary and image the end-to-end cluster
# needs, from the Go module proxy and Debian's packages only:
#   - the control plane (kube-apiserver, kube-controller-manager, kubectl, etcd): make control-plane
#   - kubelet, kube-scheduler, kube-proxy v${KUBE_VERSION} (hack/tools/kubenode)
#   - containerd, its runc shim and ctr ${CONTAINERD_VERSION}
#   - runc, the CNI plugins, conntrack and iptables from Debian, when missing
#   - the sandbox image (hack/e2e/pause) and the operator's image (make build-cross
#     + hack/ociimage), as image tarballs under bin/e2e/images
#   - OLM v0 ${OLM_VERSION}, opm and grpc_health_probe (hack/tools/olm),
#     CoreDNS (hack/tools/coredns), busybox-static from Debian
#     (the unpack Job's /bin/cp), their FROM-scratch images, and OLM's install
#     rendered from the module's deploy/chart with helm (bin/e2e/olm.yaml)
# A second run reuses everything whose inputs did not change.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

mkdir -p "${NODE_BIN}" "${CTRD_BIN}" "${IMAGES}" "${OLM_BIN}"

# Debian packages (root only; CI runs as root).
need=()
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] || need+=(containernetworking-plugins)
command -v conntrack >/dev/null || need+=(conntrack)
command -v iptables >/dev/null || need+=(iptables)
command -v openssl >/dev/null || need+=(openssl)
command -v dpkg-deb >/dev/null || need+=(dpkg)
if ((${#need[@]})); then
  log "installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

make -C "${root}" --no-print-directory control-plane

stamp() { sha256sum "$@" | sha256sum | cut -c1-16; }

# gobuild NAME DIR PKG LDFLAGS OUTDIR [TAGS]: build unless the output's stamp matches.
gobuild() {
  local name="$1" dir="$2" pkg="$3" ldflags="$4" out="$5" tags="${6:-}" want
  want="$(stamp "${dir}/go.mod" "${dir}/go.sum" "${dir}"/*.go)${tags:+-${tags}}"
  if [[ -x "${out}/${name}" && "$(cat "${out}/.${name}.stamp" 2>/dev/null)" == "${want}" ]]; then
    return
  fi
  log "building ${name} (minutes the first time)"
  local start=${SECONDS}
  (cd "${dir}" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -tags "${tags}" -ldflags "${ldflags}" -o "${out}/${name}.tmp" "${pkg}")
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
make -C "${root}" --no-print-directory build-cross ARCHS="${arch}" PLUGIN_TARGETS= # the image holds no plugin
bins="${root}/bin/linux-${arch}"
tag="e2e-$(stamp "${bins}/manager" "${bins}/webhook" | cut -c1-12)"
ref="${IMAGE_REPO}/gmsa-operator:${tag}"
"${ociimage}" -arch "${arch}" -tag "${ref}" -out "${IMAGES}/gmsa-operator.tar" \
  -file "${bins}/manager:/manager" -file "${bins}/webhook:/webhook" \
  -user 65532:65532 -entrypoint /manager >/dev/null
echo "${ref}" >"${IMAGES}/gmsa-operator.ref"
log "images ready: ${PAUSE_IMAGE}, ${ref}"

# --- OLM v0, opm, grpc_health_probe, CoreDNS: from the Go module proxy ---
ldflags_olm="-s -w -X github.com/operator-framework/operator-lifecycle-manager/pkg/version.OLMVersion=${OLM_VERSION}"
for c in olm catalog copy-content package-server; do
  gobuild "${c}" "${root}/hack/tools/olm" "github.com/operator-framework/operator-lifecycle-manager/cmd/${c}" "${ldflags_olm}" "${OLM_BIN}" json1
done
gobuild cpb "${root}/hack/tools/olm" github.com/operator-framework/operator-lifecycle-manager/util/cpb "-s -w" "${OLM_BIN}" json1
# opm's own build tags: no gpgme (cgo), sqlite's JSON functions.
gobuild opm "${root}/hack/tools/olm" github.com/operator-framework/operator-registry/cmd/opm "-s -w" "${OLM_BIN}" "json1,containers_image_openpgp"
gobuild grpc_health_probe "${root}/hack/tools/olm" github.com/grpc-ecosystem/grpc-health-probe "-s -w" "${OLM_BIN}"
gobuild coredns "${root}/hack/tools/coredns" . "-s -w" "${OLM_BIN}"
# The unpack Job's util container runs /bin/cp: Debian's static busybox.
if [[ ! -x "${OLM_BIN}/busybox" ]]; then
  tmp="$(mktemp -d)"
  chmod 0777 "${tmp}" # apt downloads as _apt
  (cd "${tmp}" && apt-get download -qq busybox-static >/dev/null && dpkg-deb -x busybox-static_*.deb x)
  cp "${tmp}/x/bin/busybox" "${OLM_BIN}/busybox.tmp" && mv "${OLM_BIN}/busybox.tmp" "${OLM_BIN}/busybox"
  rm -rf "${tmp}"
fi

# Their images. The OLM image is laid out as upstream's Dockerfile lays it
# out (/bin/olm, /bin/catalog, ..., /bin/cp), user 1001. The opm image has
# opm and grpc_health_probe in /bin (on the default PATH) and a writable /tmp:
# the catalog images of test/e2e are built on it.
img() { # img NAME TAG ociimage-args...: image tarball NAME.tar, its tag in NAME.ref
  local n="$1" ref="${IMAGE_REPO}/$1:$2"
  shift 2
  "${ociimage}" -arch "${arch}" -tag "${ref}" -out "${IMAGES}/${n}.tar" "$@" >/dev/null
  echo "${ref}" >"${IMAGES}/${n}.ref"
}
img olm "${OLM_VERSION}" -file "${OLM_BIN}/olm:/bin/olm" -file "${OLM_BIN}/catalog:/bin/catalog" \
  -file "${OLM_BIN}/package-server:/bin/package-server" -file "${OLM_BIN}/copy-content:/bin/copy-content" \
  -file "${OLM_BIN}/cpb:/bin/cpb" -file "${OLM_BIN}/busybox:/bin/cp" -user 1001 -entrypoint /bin/olm
img opm "${OPM_VERSION}" -file "${OLM_BIN}/opm:/bin/opm" -file "${OLM_BIN}/grpc_health_probe:/bin/grpc_health_probe" \
  -mkdir /tmp:1777 -user 1001 -entrypoint /bin/opm
img coredns "${COREDNS_VERSION}" -file "${OLM_BIN}/coredns:/coredns" -user 65532:65532 -entrypoint /coredns
cp "${OLM_BIN}/opm" "${OLM_BIN}/grpc_health_probe" "${E2E_BIN}/" # test/e2e builds catalogs with them

# OLM's install: the module's deploy/chart rendered with helm and its own
# values, but for the images (built above, never pulled; up.sh puts in their
# references by digest, known once containerd imported them), one packageserver
# replica (one node), and installType other than "upstream", which leaves out
# the public catalog (a CatalogSource whose image would be pulled).
olm_chart="$(cd "${root}/hack/tools/olm" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' github.com/operator-framework/operator-lifecycle-manager)/deploy/chart"
make -C "${root}" --no-print-directory helm >/dev/null
olm_img=OLM_IMAGE_BY_DIGEST
opm_img=OPM_IMAGE_BY_DIGEST
"${root}/bin/tools/helm-${HELM_VERSION}" template olm "${olm_chart}" --include-crds \
  --set "olm.image.ref=${olm_img},catalog.image.ref=${olm_img},package.image.ref=${olm_img}" \
  --set "olm.image.pullPolicy=IfNotPresent,catalog.image.pullPolicy=IfNotPresent,package.image.pullPolicy=IfNotPresent" \
  --set "catalog.opmImageArgs=--opmImage=${opm_img},catalog.commandArgs=--configmapServerImage=${opm_img}" \
  --set package.replicaCount=1 --set installType=e2e >"${E2E_BIN}/olm.yaml.tmp"
mv "${E2E_BIN}/olm.yaml.tmp" "${E2E_BIN}/olm.yaml"
log "OLM ${OLM_VERSION} images and install ready"
