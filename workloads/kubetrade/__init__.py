"""kubetrade: a Kubernetes-native autonomous crypto trading platform.

This package holds everything that runs inside the platform's pods (collectors, the
strategy engine, runners, risk manager, executor, API) plus the typed custom-resource
models in :mod:`kubetrade.resources`, which the control plane in ``kubetrade_operator``
shares.
"""

__version__ = "0.1.0"
