//go:build tools

// Package tools pins the Kubernetes control-plane binaries that the test
// harness runs (kube-apiserver, kube-controller-manager, kubectl). They are
// built from the Go module proxy by hack/build-control-plane.sh.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
