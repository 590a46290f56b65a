"""NATS subjects and message schemas: the one place where the wire contract is defined.

Every publisher and consumer imports subjects from :mod:`kubetrade.messaging.subjects`
and message types from :mod:`kubetrade.messaging.schemas`; nothing builds a subject
string or a payload by hand.
"""
