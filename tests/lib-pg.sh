# lib-pg.sh — a throwaway PostgreSQL server for the shell tests, sourced
# after tap.sh with $T set.  pg_start starts one on 127.0.0.1 (random free
# port, trust auth, role ms, fsync off) in a temporary directory and sets
# PGPORT_MS and PGURI (postgresql://ms@127.0.0.1:PORT); pg_stop stops it
# (the caller's EXIT trap must call it).  pg_skip_reason is non-empty when
# the PostgreSQL binaries are missing.  As root the server runs as the
# postgres system user (postgres refuses root).
PGBIN=/usr/lib/postgresql/15/bin
[ -x "$PGBIN/initdb" ] || PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1)
pg_skip_reason=
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ] || ! command -v psql >/dev/null; then
    pg_skip_reason="PostgreSQL binaries not installed (postgresql, postgresql-client)"
elif [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    pg_skip_reason="running as root without a postgres system user"
fi
if [ "$(id -u)" = 0 ]; then
    pg_as() { runuser -u postgres -- "$@"; }
else
    pg_as() { "$@"; }
fi
PGD_MS=
pg_start() {
    PGD_MS=$(mktemp -d "${TMPDIR:-/tmp}/mspg.XXXXXX") || return 1
    chmod 755 "$PGD_MS"
    [ "$(id -u)" = 0 ] && chown postgres "$PGD_MS"
    pg_as "$PGBIN/initdb" -D "$PGD_MS/data" -U ms --auth=trust -E UTF8 --no-locale >"$PGD_MS/initdb.log" 2>&1 ||
        return 1
    local try
    for try in 1 2 3 4 5; do
        PGPORT_MS=$((20000 + (RANDOM % 20000)))
        if pg_as "$PGBIN/pg_ctl" -D "$PGD_MS/data" -w -t 30 -l "$PGD_MS/log" \
             -o "-c listen_addresses=127.0.0.1 -p $PGPORT_MS -k $PGD_MS -c fsync=off -c max_connections=40" \
             start >/dev/null 2>&1; then
            PGURI="postgresql://ms@127.0.0.1:$PGPORT_MS"
            return 0
        fi
    done
    return 1
}
pg_stop() {
    if [ -n "$PGD_MS" ] && [ -f "$PGD_MS/data/postmaster.pid" ]; then
        pg_as "$PGBIN/pg_ctl" -D "$PGD_MS/data" -m immediate stop >/dev/null 2>&1
    fi
    [ -n "$PGD_MS" ] && rm -rf "$PGD_MS"
}
# pg_psql DB SQL...: run statements as role ms
pg_psql() { local d=$1; shift; psql -X -q -At -h 127.0.0.1 -p "$PGPORT_MS" -U ms -d "$d" -v ON_ERROR_STOP=1 "$@"; }
