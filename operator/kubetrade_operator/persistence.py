"""Where kopf keeps the last handled state of each object.

For Strategies (the kind that comes by the thousand) the last handled spec is the one
``status.observedGeneration`` names, the convention every Kubernetes controller follows:
nothing is stored beside the status the handler writes anyway, so kopf's end-of-cycle
write is the one status patch instead of a status patch plus an annotation patch (and an
admission round for that second write).  Every change to a Strategy's spec bumps its
generation, so no change is missed; label and annotation edits alone run no handler
(nothing the Strategy handlers do depends on them).  A handler that fails writes no
``observedGeneration``, so kopf retries it as before.  The handlers are level-based and the
same for create, update and resume, so the cause kopf names matters only in its logs.
For the same reason a Strategy's essence (what kopf compares to detect a change) is its
generation alone: kopf builds and compares essences on every watch event, and a full one
is a deep copy of the whole object, four times per event.

The other kubetrade kinds keep the full last-handled spec in an annotation.  Kinds the
operator only watches (runner and collector Deployments: ``on.event`` handlers, which
look at no essence) get the generation-only essence too: kopf builds one for every event
of every watched kind, whether a handler compares it or not.

Progress (retries of a failing handler) stays in annotations, without kopf's one-time
``kubetrade.io/kopf-managed`` marker: the marker only tells *other* kopf-based operators to
ignore our annotations, no other operator handles kubetrade's own kinds, and writing it
would cost every new object one more PATCH.  kopf's own change detection drops these
progress annotations from its diffs with or without the marker.
"""

from __future__ import annotations

from typing import Any

import kopf

from kubetrade.resources import GROUP

GENERATION_TRACKED = frozenset({"Strategy"})


class ObservedGenerationDiffBase(kopf.DiffBaseStorage):
    def __init__(self, fallback: kopf.DiffBaseStorage, kinds: frozenset[str] = GENERATION_TRACKED) -> None:
        super().__init__()
        self.fallback = fallback
        self.kinds = kinds

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        own = str(body.get("apiVersion", "")).startswith(f"{GROUP}/")
        if extra_fields or (own and body.get("kind") not in self.kinds):  # no handler of ours filters by field
            return self.fallback.build(body=body, extra_fields=extra_fields)
        return {"generation": (body.get("metadata") or {}).get("generation")}

    def fetch(self, *, body: kopf.Body) -> Any:
        if body.get("kind") not in self.kinds:
            return self.fallback.fetch(body=body)
        observed = (body.get("status") or {}).get("observedGeneration")
        if observed is None:
            return None  # never handled: a creation (or a resume, when kopf found it by listing)
        return {"generation": observed}  # the generation last handled: equal to build() if unchanged

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        if body.get("kind") not in self.kinds:
            self.fallback.store(body=body, patch=patch, essence=essence)
        # Strategy: the handler's status patch carries observedGeneration.


class UnmarkedAnnotationsProgressStorage(kopf.AnnotationsProgressStorage):
    """Progress in annotations, without the marker for other kopf operators (see the module doc)."""

    def _store_marker(self, prefix: str, patch: kopf.Patch, body: kopf.Body) -> None:
        return None
