"""Choosing what to trade: pair selection for the evolution."""
