-- Custom resources when there is no Kubernetes (`kubetrade up`): the same objects the
-- cluster would store, behind the same interface (kubetrade.storage.resources).
-- resource_version grows on every write, as an API server's does, for optimistic locking.

CREATE SEQUENCE kube_resource_versions;

CREATE TABLE kube_resources (
  kind              text        NOT NULL,
  namespace         text        NOT NULL,
  name              text        NOT NULL,
  uid               uuid        NOT NULL,
  generation        bigint      NOT NULL DEFAULT 1,
  resource_version  bigint      NOT NULL DEFAULT nextval('kube_resource_versions'),
  body              jsonb       NOT NULL,   -- the whole object, metadata included
  created_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, namespace, name)
);
