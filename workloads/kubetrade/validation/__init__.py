"""One judgement of a kubetrade resource, wherever it enters (domain layer, above the contracts).

``semantic`` holds the checks a schema cannot express (a genome that compiles, a cron a
CronJob accepts, model URIs the runner loads, paths that stay where they point); ``manifests``
puts them together with the models: :func:`spec_problems` for the webhook and every reconcile,
:func:`manifest_problems` for ``kubetrade validate`` and the API.
"""

from kubetrade.validation.manifests import MAX_PROBLEMS, PLURAL_KIND, manifest_problems, parse_spec, spec_problems
from kubetrade.validation.semantic import short

__all__ = ["MAX_PROBLEMS", "PLURAL_KIND", "manifest_problems", "parse_spec", "short", "spec_problems"]
