//go:build tools

// Package tools pins CoreDNS, the end-to-end cluster's DNS (OLM's catalog
// operator dials <catalog>.<namespace>.svc), built by hack/e2e/build.sh.
package tools

import (
	_ "github.com/coredns/coredns"
)
