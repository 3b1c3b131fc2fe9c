// Command coredns is CoreDNS v1.15.0 (pinned in go.mod) with only the
// plugins the end-to-end cluster's Corefile uses (hack/e2e/addons/coredns.yaml),
// the way CoreDNS documents builds with a plugin list of one's own: its
// coremain, and the plugins imported for their registration. The full plugin
// set (cloud DNS providers and all) takes minutes longer to build.
package main

import (
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"

	"github.com/coredns/coredns/coremain"
)

func main() { coremain.Run() }
