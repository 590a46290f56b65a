// The pod sandbox's one process: it holds the pod's namespaces, reaps zombies of a shared
// PID namespace, and exits at once on SIGTERM or SIGINT.  Built by scripts/testbed/build-node.sh
// into the node's sandbox image (no registry can give registry.k8s.io/pause here).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
