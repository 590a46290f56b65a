// CoreDNS with the plugins the test node's Corefile uses, and no others (the stock build
// links every plugin, cloud DNS providers and tracers included, and takes several times as
// long to compile). Built by scripts/testbed/build-node.sh against github.com/coredns/coredns.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/template"
)

func main() {
	coremain.Run()
}
