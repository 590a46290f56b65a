"""Strategy lifecycle decisions: promotion, retirement and goal progress.

Pure functions of their inputs, so the rules can be read, tested and audited without a
cluster; the operator only applies what they decide.
"""
