"""What a Helm install needs once and must never regenerate: Secrets made in the cluster, not in a template.

The chart renders no secret values (``helm template`` twice gives the same output, so Argo CD
and Flux see no drift); its pre-install/pre-upgrade Job runs ``kubetrade install-secrets``,
which creates the Secrets that do not exist yet and leaves every existing one as it is, and
its post-install Job runs ``kubetrade install-admin-key`` for the first admin API key.
"""
