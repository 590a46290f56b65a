"""Integer codes shared by the genome compiler and the numba kernels.

Kept in a module without numba so that validating a genome (the admission webhook, the
operator, the API) does not load the JIT compiler, which is most of the engine's memory.
"""

# rule table columns
LEFT, OP, RIGHT = 0, 1, 2
# comparison codes (index in kubetrade.resources.genome.Comparison order)
GT, LT, GE, LE, XABOVE, XBELOW = 0, 1, 2, 3, 4, 5
# rule sets
ENTRY, EXIT, SHORT_ENTRY, SHORT_EXIT = 0, 1, 2, 3
# risk columns
STOP_LOSS, TAKE_PROFIT, TRAILING, POSITION = 0, 1, 2, 3
# directions
LONG, SHORT, BOTH = 0, 1, 2
