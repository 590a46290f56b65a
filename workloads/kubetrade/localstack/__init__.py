"""``kubetrade up``: the whole platform on one machine, without Kubernetes.

The same resource YAML a cluster would get (``examples/``) drives real NATS and PostgreSQL on
loopback (``servers/``), the same workloads the pods run, and the operator's own reconcilers,
status feed and review over a local cluster (``cluster.py``: the resources in the local store,
a runner task per runner Deployment).  ``supervisor.py`` restarts a service that dies and
drains the orders before the stop; ``pipeline.py`` brings it all up in a cluster's order.
"""
