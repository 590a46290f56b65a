"""A real Kubernetes node for the tests: containerd, runc, CNI, kubelet, kube-proxy and
CoreDNS, built from the Go module proxy (``scripts/testbed/build-node.sh``) and run in a
sandbox of their own (:mod:`.sandbox`), joined to the test control plane (:mod:`.cluster`)."""
