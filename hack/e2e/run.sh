#!/usr/bin/env bash
# make e2e: build what is missing, start the one-node cluster, run test/e2e
# against it, and take the cluster down again whatever happened. On failure
# the tail of every component's log is printed; the full logs stay in
# ${E2E_DIR}/logs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

total=${SECONDS}
start=${SECONDS}
"${root}/hack/e2e/build.sh"
build_s=$((SECONDS - start))

cleanup() {
  local rc=$?
  if ((rc)); then print_logs; fi
  if [[ -z "${E2E_KEEP:-}" ]]; then
    "${root}/hack/e2e/down.sh" || rc=1
  else
    log "E2E_KEEP is set: the cluster stays up; make e2e-down takes it down"
  fi
  log "build ${build_s}s, total $((SECONDS - total))s"
  exit "${rc}"
}
trap cleanup EXIT

if compgen -G "${PIDS}/*.pid" >/dev/null; then
  log "a cluster of an earlier run is still recorded in ${PIDS}: taking it down first"
  "${root}/hack/e2e/down.sh" || true
fi
start=${SECONDS}
"${root}/hack/e2e/up.sh"
log "cluster up in $((SECONDS - start))s"

start=${SECONDS}
cd "${root}"
E2E_KUBECONFIG="${KUBECONFIG_ADMIN}" E2E_DIR="${E2E_DIR}" E2E_IMAGE="$(cat "${IMAGES}/gmsa-operator.ref")" \
  E2E_KUBECTL="${K8S_BIN}/kubectl" E2E_CTR="${CTRD_BIN}/ctr" E2E_CTRD_SOCK="${CTRD_SOCK}" HELM="${HELM:-}" \
  go test -tags e2e -count=1 -timeout 40m ./test/e2e/ -v -ginkgo.v \
  ${E2E_GINKGO_FLAGS:--ginkgo.label-filter=!known-defect}
log "test/e2e took $((SECONDS - start))s"
