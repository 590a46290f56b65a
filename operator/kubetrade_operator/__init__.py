"""The kubetrade control plane: kopf reconcilers for Strategy, Goal, RiskPolicy and Collector.

Layers, bottom up: ``config`` (settings from the environment), ``builders`` (pure: the
child objects a resource should have), ``conditions`` and ``phases`` (pure status logic),
``kube`` (the thin I/O layer: server-side apply, status patches, events), then one
handler module per kind, ``admission`` (validating webhook), ``statusfeed`` (workload
status from NATS), ``leader`` (one active replica) and ``main`` (wiring).  No trading
logic lives here: decisions such as promotion come from ``kubetrade.lifecycle``.
"""
