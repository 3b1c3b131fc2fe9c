#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, kube-controller-manager,
# kubectl, etcd) from the Go module proxy into bin/k8s/<version>-<os>-<arch>/,
# the layout envtest's KUBEBUILDER_ASSETS expects. A binary that already
# exists is not rebuilt, so a second run costs nothing.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-1.37.1}"
ETCD_VERSION="${ETCD_VERSION:-3.7.3}"
root="$(cd "$(dirname "$0")/.." && pwd)"
os="$(go env GOOS)"
arch="$(go env GOARCH)"
out="${root}/bin/k8s/${KUBE_VERSION}-${os}-${arch}"
mkdir -p "${out}"

export GOTOOLCHAIN=local GOFLAGS=-mod=mod
vpkg=k8s.io/component-base/version
minor="$(echo "${KUBE_VERSION}" | cut -d. -f2)"
kube_ldflags="-s -w -X ${vpkg}.gitVersion=v${KUBE_VERSION} -X ${vpkg}.gitMajor=1 -X ${vpkg}.gitMinor=${minor} -X ${vpkg}.gitTreeState=clean"

build() { # build <name> <module dir> <package> <ldflags>
  local name="$1" dir="$2" pkg="$3" ldflags="$4"
  if [[ -x "${out}/${name}" && -f "${out}/.${name}.version" ]] && grep -qx "$(stamp "${dir}")" "${out}/.${name}.version"; then
    echo "control plane: ${name} is cached in ${out#"${root}/"}"
    return
  fi
  echo "control plane: building ${name} (this takes minutes the first time)"
  local start=${SECONDS}
  (cd "${dir}" && go build -trimpath -ldflags "${ldflags}" -o "${out}/${name}.tmp" "${pkg}")
  mv "${out}/${name}.tmp" "${out}/${name}"
  stamp "${dir}" > "${out}/.${name}.version"
  echo "control plane: built ${name} in $((SECONDS - start))s"
}

# stamp identifies a build by the module's pinned requirements, so changing a
# pin in hack/tools rebuilds and nothing else does.
stamp() { sha256sum "$1/go.mod" | cut -d' ' -f1; }

kube="${root}/hack/tools/kube"
build kube-apiserver "${kube}" k8s.io/kubernetes/cmd/kube-apiserver "${kube_ldflags}"
build kube-controller-manager "${kube}" k8s.io/kubernetes/cmd/kube-controller-manager "${kube_ldflags}"
build kubectl "${kube}" k8s.io/kubernetes/cmd/kubectl "${kube_ldflags}"
build etcd "${root}/hack/tools/etcd" . "-s -w"
