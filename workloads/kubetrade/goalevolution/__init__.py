"""A Goal's evolution run (``kubetrade goal-evolution``): a Goal's settings + stored candles ->
new paper Strategy resources.  The genome search it runs is :mod:`kubetrade.engine.evolve`.

``goalrun`` holds the one recipe (choose pairs, evolve, rank, name); ``kubetrade up`` calls it
on the bundled candles and ``kubetrade goal-evolution`` (the Goal's CronJob) on stored ones.
"""
