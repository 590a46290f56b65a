"""Goal-driven evolution runs: a Goal's settings + stored candles -> new paper Strategy resources.

``run`` holds the one recipe (choose pairs, evolve, rank, name); ``kubetrade up`` calls it
on the bundled candles and ``kubetrade goal-evolution`` (the Goal's CronJob) on stored ones.
"""
