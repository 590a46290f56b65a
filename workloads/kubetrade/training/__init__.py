"""Training the learning models as a command and as the Goal's training Job (``kubetrade train``)."""
