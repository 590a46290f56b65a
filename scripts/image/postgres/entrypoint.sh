#!/bin/bash
# Entrypoint of the kubetrade-postgres image: the part of the official postgres (and TimescaleDB)
# images' interface that kubetrade's chart uses, on Debian's PostgreSQL 15.
#
#   POSTGRES_PASSWORD          the superuser's password (required, unless
#                              POSTGRES_HOST_AUTH_METHOD=trust)
#   POSTGRES_USER              the superuser (default postgres)
#   POSTGRES_DB                a database made at first start (default $POSTGRES_USER)
#   PGDATA                     the cluster's folder (default /var/lib/postgresql/data); made on
#                              first start when empty, kept after
#   POSTGRES_INITDB_ARGS       more arguments for initdb
#   POSTGRES_HOST_AUTH_METHOD  pg_hba method for TCP clients (default scram-sha-256)
#   /docker-entrypoint-initdb.d/*.sql, *.sql.gz, *.sh   run once, on the new cluster
#
# Arguments: `postgres [OPTION...]` or just options (-c name=value ...), as the official image.
# TIMESCALEDB_TELEMETRY and NO_TS_TUNE (the chart's, for TimescaleDB) mean nothing here: this
# server has no TimescaleDB, and kubetrade's storage layer falls back to plain tables.
# Runs as any uid with a passwd entry owning PGDATA (the image's postgres, 70); started as root it
# makes PGDATA postgres's and drops to it.
set -Eeuo pipefail
PGBIN=/usr/lib/postgresql/15/bin

if [ $# -eq 0 ] || [ "${1:0:1}" = '-' ]; then
  set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
  exec "$@"
fi
shift
export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
SOCKETS=/var/run/postgresql

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" "$SOCKETS"
  chown postgres:postgres "$PGDATA" "$SOCKETS"
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" postgres "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != trust ]; then
    echo "postgres-entrypoint: the database is uninitialized and POSTGRES_PASSWORD is not set;" \
      "set it (or POSTGRES_HOST_AUTH_METHOD=trust to allow every connection without one)" >&2
    exit 1
  fi
  if ! mkdir -p "$PGDATA" 2>/dev/null || ! chmod 700 "$PGDATA" 2>/dev/null; then
    echo "postgres-entrypoint: cannot make $PGDATA (uid $(id -u)): the volume must be writable by it" >&2
    exit 1
  fi
  pwfile="$(mktemp)"
  trap 'rm -f "$pwfile"' EXIT
  printf '%s' "${POSTGRES_PASSWORD:-}" >"$pwfile"
  # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of words, as in the official image
  "$PGBIN/initdb" --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
    --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 \
    ${POSTGRES_INITDB_ARGS:-} >/dev/null
  rm -f "$pwfile"
  printf '\n# TCP clients (postgres-entrypoint)\nhost all all all %s\n' \
    "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >>"$PGDATA/pg_hba.conf"
  # a first start on the socket only, to make the database and run the init scripts
  "$PGBIN/pg_ctl" --pgdata="$PGDATA" --wait --silent \
    -o "-c listen_addresses='' -c unix_socket_directories=$SOCKETS" start
  psql=("$PGBIN/psql" -v ON_ERROR_STOP=1 --no-psqlrc --quiet --host="$SOCKETS" --username="$POSTGRES_USER")
  if [ "$POSTGRES_DB" != postgres ]; then
    "${psql[@]}" --dbname=postgres --set=db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "postgres-entrypoint: running $f" >&2; . "$f" ;;
      *.sql) echo "postgres-entrypoint: running $f" >&2; "${psql[@]}" --dbname="$POSTGRES_DB" -f "$f" ;;
      *.sql.gz) echo "postgres-entrypoint: running $f" >&2; gzip -dc "$f" | "${psql[@]}" --dbname="$POSTGRES_DB" ;;
      *) if [ -e "$f" ]; then echo "postgres-entrypoint: ignoring $f" >&2; fi ;;
    esac
  done
  "$PGBIN/pg_ctl" --pgdata="$PGDATA" --wait --silent -m fast stop
  echo "postgres-entrypoint: cluster made in $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)" >&2
fi

exec "$PGBIN/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories="$SOCKETS" "$@"
