//go:build tools

// Package tools pins OLM v0 for the end-to-end cluster (hack/e2e/build.sh
// builds these commands from the Go module proxy): the olm and catalog
// operators, copy-content and cpb (the bundle unpack Job's util image), and
// the package server. `go install MOD@VERSION` does not work for OLM (its
// go.mod has replace lines), so it is built through this module.
package tools

import (
	_ "github.com/operator-framework/operator-lifecycle-manager/cmd/catalog"
	_ "github.com/operator-framework/operator-lifecycle-manager/cmd/copy-content"
	_ "github.com/operator-framework/operator-lifecycle-manager/cmd/olm"
	_ "github.com/operator-framework/operator-lifecycle-manager/cmd/package-server"
	_ "github.com/operator-framework/operator-lifecycle-manager/util/cpb"
)
