//go:build tools

// Package tools pins OLM v0 for the end-to-end cluster (hack/e2e/build.sh
// builds these commands from the Go module proxy): the olm and catalog
// operators, copy-content and cpb (the bundle unpack Job's util image), the
// package server, and opm at the version OLM itself requires, with
// grpc_health_probe (the catalog images). `go install MOD@VERSION` does not
// work for them (replace lines in their go.mod), so they are built through
// this module; one module, so opm shares OLM's compiled dependencies.
package tools

import (
	_ "github.com/grpc-ecosystem/grpc-health-probe"
	_ "github.com/operator-framework/operator-lifecycle-manager/cmd/catalog"
	_ "github.com/operator-framework/operator-lifecycle-manager/cmd/copy-content"
	_ "github.com/operator-framework/operator-lifecycle-manager/cmd/olm"
	_ "github.com/operator-framework/operator-lifecycle-manager/cmd/package-server"
	_ "github.com/operator-framework/operator-lifecycle-manager/util/cpb"
	_ "github.com/operator-framework/operator-registry/cmd/opm"
)
