"""``kubetrade up``: the whole platform on one machine, without Kubernetes.

The same resource YAML a cluster would get (``examples/``) drives an embedded NATS and
PostgreSQL, and the same workloads the pods run.
"""
