//go:build tools

// Package tools pins opm and cpb (operator-registry) and grpc_health_probe
// for the end-to-end cluster's OLM catalog and bundle images
// (hack/e2e/build.sh).
package tools

import (
	_ "github.com/grpc-ecosystem/grpc-health-probe"
	_ "github.com/operator-framework/operator-registry/cmd/opm"
)
