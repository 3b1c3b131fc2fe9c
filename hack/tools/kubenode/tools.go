//go:build tools

// Package tools pins the node binaries of the end-to-end cluster (kubelet,
// kube-scheduler, kube-proxy), built from the Go module proxy by
// hack/e2e/build.sh. It is separate from hack/tools/kube so that adding them
// does not change that module's go.mod, which stamps the cached control plane.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
