"""The goal manager: computes every Goal's equity, progress and sizing multiplier and reports them.

Like the risk manager it is a workload of its own (``kubetrade goal-manager``): it reads the
Goals, Strategies and RiskPolicies through the workloads' seam (:mod:`kubetrade.cluster`: the
API server, or the local store under ``kubetrade up``), computes the figures with
:func:`kubetrade.lifecycle.goalfigures.goal_figures`, publishes the multiplier where runners read
it (KV ``goal-sizing``) and reports the figures on ``status.goal.<namespace>.<name>``, which the
operator's status feed merges into ``Goal.status``.  The operator reflects them (the OnTrack
condition) and applies promotions; it computes none of it itself.
"""
