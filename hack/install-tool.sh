#!/usr/bin/env bash
# install-tool.sh NAME PACKAGE VERSION
# Installs a Go tool at an exact version into bin/tools/NAME-VERSION and
# prints that path. An installed version is reused, so a second run costs
# nothing.
set -euo pipefail
name="$1" pkg="$2" version="$3"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${root}/bin/tools/${name}-${version}"
if [[ ! -x "${out}" ]]; then
  echo "tools: installing ${name} ${version}" >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "${tmp}"' EXIT
  GOTOOLCHAIN=local GOBIN="${tmp}" GOFLAGS= go install -trimpath "${pkg}@${version}" >&2
  mkdir -p "$(dirname "${out}")"
  bin="$(basename "${pkg}")"
  # A major-version suffix (…/kustomize/v5) is not the binary's name.
  [[ "${bin}" =~ ^v[0-9]+$ ]] && bin="$(basename "$(dirname "${pkg}")")"
  mv "${tmp}/${bin}" "${out}"
fi
echo "${out}"
