#!/bin/sh
# First start: make the cluster with POSTGRES_PASSWORD for user postgres,
# listening on every address with password logins, and POSTGRES_DB. Then
# run the command (postgres and its -c settings) as the postgres user.
set -eu
if [ "${1:-}" = "postgres" ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
        pwfile="$(mktemp)"
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
        chown postgres "$pwfile"
        runuser -u postgres -- initdb --username=postgres --pwfile="$pwfile" \
            --auth-local=trust --auth-host=scram-sha-256 >/dev/null
        rm -f "$pwfile"
        echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
        echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
        if [ -n "${POSTGRES_DB:-}" ] && [ "$POSTGRES_DB" != postgres ]; then
            runuser -u postgres -- pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
            runuser -u postgres -- createdb "$POSTGRES_DB"
            runuser -u postgres -- pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
        fi
        echo "postgres stand-in: cluster made"
    fi
    exec runuser -u postgres -- "$@"
fi
exec "$@"
