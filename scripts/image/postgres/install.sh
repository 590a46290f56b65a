#!/bin/sh
# The kubetrade-postgres image's build step, run as root inside bookworm slim (build.sh, chroot):
# Debian's PostgreSQL 15 server with no cluster made at install time, the postgres user at uid 70
# (the uid the chart runs the bundled database as, the official Alpine images' postgres user),
# and an entrypoint that takes what the chart gives the official TimescaleDB image.
set -eu
BUILD="${BUILD:-/tmp/kubetrade-build}"
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1767225600}"
export DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
started="$(mktemp)"

groupadd --system --gid 70 postgres
useradd --system --uid 70 --gid 70 --home-dir /var/lib/postgresql --no-create-home --shell /bin/sh postgres
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql-common >/dev/null
# the entrypoint makes the one cluster, in $PGDATA, on first start
sed -i 's/^#\?\s*create_main_cluster.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf
apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old \
  /var/log/apt /var/log/dpkg.log /var/log/alternatives.log /var/cache/ldconfig/aux-cache \
  /etc/passwd- /etc/group- /etc/shadow- /etc/gshadow- /var/log/faillog /var/log/lastlog
# ssl-cert made a key pair at install time: an image must not carry a private key
rm -f /etc/ssl/private/ssl-cert-snakeoil.key /etc/ssl/certs/ssl-cert-snakeoil.pem
find /etc/ssl/certs -xtype l -delete
[ -x /usr/lib/postgresql/15/bin/postgres ] || { echo "postgresql-15 is not where the image expects it" >&2; exit 1; }

install -m 0755 "$BUILD/entrypoint.sh" /usr/local/bin/postgres-entrypoint
mkdir -p /docker-entrypoint-initdb.d /var/lib/postgresql/data
chown postgres:postgres /var/run/postgresql /var/lib/postgresql /var/lib/postgresql/data
chmod 3777 /var/run/postgresql
chmod 1777 /var/lib/postgresql/data

find / -xdev -newer "$started" ! -type s ! -path '/proc/*' ! -path '/dev/*' ! -path "$BUILD/*" \
  -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
rm -f "$started"
