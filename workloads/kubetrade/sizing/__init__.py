"""Position sizing: the goal-oriented multiplier and the policy-capped position fraction."""
