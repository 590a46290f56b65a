"""``kubetrade trades`` and ``kubetrade strategies``: look at what the platform does."""
