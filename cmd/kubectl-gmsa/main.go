// Command kubectl-gmsa is the `kubectl gmsa` plugin: `kubectl gmsa doctor`
// checks every link of the gMSA chain for a pod, a pod manifest or a
// service account; `kubectl gmsa migrate` writes the GmsaAccounts that take
// over gMSA set up by hand. Install it on PATH (or with Krew) and kubectl
// finds it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/gmsa-operator/gmsa-operator/internal/plugin"
)

// version is stamped at build time (-ldflags -X main.version=...).
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := plugin.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, version)
	stop()
	os.Exit(code)
}
