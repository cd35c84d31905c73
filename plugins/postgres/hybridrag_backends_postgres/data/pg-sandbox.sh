#!/usr/bin/env bash
# PostgreSQL 17 + pgvector + Apache AGE in a Debian trixie debootstrap root, as root on Debian or
# Ubuntu: `hybridrag-backends postgres up|down|status|url` (the postgres plugin) and, for tests, CI
# and benchmarks, scripts/pg-sandbox both run this file. The root is $HYBRIDRAG_PG_ROOT
# (default /var/lib/hybridrag-pg/root).
#
#   pg-sandbox.sh [start]   provision the root if needed, start the cluster if down,
#                           ensure user + database + extensions; last stdout line = URL
#   pg-sandbox.sh stop      stop the cluster
#   pg-sandbox.sh restart   stop, then start (same port when still free)
#   pg-sandbox.sh status    "running <port>" / "stopped" / "absent" (exit 0 / 3 / 4)
#   pg-sandbox.sh url       print the URL (exit 3 when the cluster is down)
#
# Idempotent: the root is reused when present (missing packages are installed), the cluster is
# started only when down, and the chosen port and generated password are kept in the root so
# reruns print the same URL. A flock serialises concurrent callers. Progress goes to stderr.
set -euo pipefail

ROOT="${HYBRIDRAG_PG_ROOT:-/var/lib/hybridrag-pg/root}"
PG_VERSION=17
PACKAGES=(postgresql-17 postgresql-17-pgvector postgresql-17-age)
SUITE=trixie
MIRROR="${HYBRIDRAG_PG_MIRROR:-http://deb.debian.org/debian}"
DB_USER=hybridrag
DB_NAME=hybridrag
STATE="$ROOT/var/lib/hybridrag-sandbox"   # port + password live inside the root
CONF="$ROOT/etc/postgresql/$PG_VERSION/main/conf.d/hybridrag.conf"
LOCK="$(dirname "$ROOT")/.$(basename "$ROOT").lock"

log() { echo "pg-sandbox: $*" >&2; }
die() { echo "pg-sandbox: error: $*" >&2; exit 1; }

# fd 9 (the lock) is closed for everything run in the root: a server started with it open
# would hold the lock for as long as it runs.
in_root() { chroot "$ROOT" "$@" 9>&-; }
as_postgres_sql() {  # run SQL as the postgres superuser over the local socket
    in_root su postgres -s /bin/sh -c "psql -X -q -v ON_ERROR_STOP=1 -p $(cat "$STATE/port") $*"
}

[ "$(id -u)" = 0 ] || die "must run as root (it uses chroot); run it with sudo"

packages_installed() {
    local p
    for p in "${PACKAGES[@]}"; do
        in_root dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
    done
}

provision_root() {
    if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
        command -v debootstrap >/dev/null || {
            log "installing debootstrap on the host"
            apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
        }
        # Build in a side dir and rename, so a half-made root is never mistaken for a good one.
        local partial="$ROOT.partial"
        rm -rf "$partial"
        mkdir -p "$(dirname "$ROOT")"
        log "debootstrap $SUITE into $ROOT (about a minute)"
        debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$partial" "$MIRROR" >&2
        rm -rf "$ROOT"
        mv "$partial" "$ROOT"
    fi
    if ! packages_installed; then
        log "installing ${PACKAGES[*]} in the root"
        cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
        in_root apt-get update -qq >&2
        in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >&2
    fi
    if [ ! -d "$ROOT/etc/postgresql/$PG_VERSION/main" ]; then
        in_root pg_createcluster "$PG_VERSION" main >&2
    fi
}

# pg_ctl, not pg_ctlcluster, for status/stop: pg_ctlcluster validates the pid through /proc,
# which the root does not mount ("pid file is invalid").
PG_CTL="/usr/lib/postgresql/$PG_VERSION/bin/pg_ctl -D /var/lib/postgresql/$PG_VERSION/main"
pg_ctl() { in_root su postgres -s /bin/sh -c "$PG_CTL $*"; }

cluster_running() {
    pg_ctl status >/dev/null 2>&1
}

port_free() {
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

configure() {
    mkdir -p "$STATE"
    chmod 700 "$STATE"
    # Reuse the stored port unless something else took it while we were down.
    if [ ! -s "$STATE/port" ] || ! port_free "$(cat "$STATE/port")"; then
        free_port >"$STATE/port"
    fi
    if [ ! -s "$STATE/password" ]; then
        # hex only: nothing to escape in SQL or in the URL
        python3 -c 'import secrets; print(secrets.token_hex(16))' >"$STATE/password"
        chmod 600 "$STATE/password"
    fi
    mkdir -p "$(dirname "$CONF")"
    cat >"$CONF" <<EOF
# written by hybridrag-backends' pg-sandbox.sh
port = $(cat "$STATE/port")
listen_addresses = '127.0.0.1'
shared_preload_libraries = 'age'
max_connections = 200
shared_buffers = 256MB
maintenance_work_mem = 256MB
max_wal_size = 2GB
EOF
}

ensure_database() {
    local pw
    pw="$(cat "$STATE/password")"
    # Wait for the server to accept connections (start returns before that on a slow disk).
    for _ in $(seq 1 60); do
        in_root su postgres -s /bin/sh -c "pg_isready -q -h 127.0.0.1 -p $(cat "$STATE/port")" && break
        sleep 0.5
    done
    as_postgres_sql -d postgres <<EOF
SET client_min_messages = warning;
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN SUPERUSER;
  END IF;
END \$\$;
ALTER ROLE $DB_USER PASSWORD '$pw';
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_USER'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME')\gexec
EOF
    as_postgres_sql -d "$DB_NAME" <<EOF
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS age;
EOF
    # New databases made by tests (CREATE DATABASE ... TEMPLATE template1) get both extensions too.
    as_postgres_sql -d template1 <<EOF
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS age;
EOF
}

url() {
    echo "postgresql://$DB_USER:$(cat "$STATE/password")@127.0.0.1:$(cat "$STATE/port")/$DB_NAME"
}

cmd_start() {
    provision_root
    if cluster_running && { [ ! -s "$STATE/port" ] || [ ! -f "$CONF" ]; }; then
        # started by the package's postinst, not configured by us yet (port 5432, no AGE preload)
        pg_ctl stop -m fast -w >&2
    fi
    if cluster_running; then
        log "cluster already running on port $(cat "$STATE/port")"
    else
        configure
        log "starting PostgreSQL $PG_VERSION on 127.0.0.1:$(cat "$STATE/port")"
        if ! in_root pg_ctlcluster "$PG_VERSION" main start >&2; then
            tail -n 30 "$ROOT/var/log/postgresql/postgresql-$PG_VERSION-main.log" >&2 || true
            die "the cluster did not start (log above)"
        fi
    fi
    ensure_database
    url
}

cmd_stop() {
    [ -d "$ROOT/etc/postgresql" ] || { log "no sandbox at $ROOT"; return 0; }
    if cluster_running; then
        pg_ctl stop -m fast -w >&2
        log "stopped"
    else
        log "already stopped"
    fi
}

cmd_restart() {
    cmd_stop
    cmd_start
}

cmd_status() {
    if [ ! -d "$ROOT/etc/postgresql/$PG_VERSION/main" ]; then echo "absent"; exit 4; fi
    if cluster_running; then echo "running $(cat "$STATE/port")"; else echo "stopped"; exit 3; fi
}

cmd_url() {
    if [ -d "$ROOT/etc/postgresql/$PG_VERSION/main" ] && cluster_running && [ -s "$STATE/password" ]; then
        url
    else
        echo "pg-sandbox: error: the sandbox at $ROOT is not running; start it with: hybridrag-backends postgres up (or scripts/pg-sandbox start in a clone)" >&2
        exit 3
    fi
}

main() {
    local cmd="${1:-start}"
    case "$cmd" in
        start | stop | status | url | restart) ;;
        -h | --help | help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown command '$cmd' (use start, stop, restart, status or url)" ;;
    esac
    mkdir -p "$(dirname "$LOCK")"
    exec 9>"$LOCK"
    flock 9
    "cmd_$cmd"
}

main "$@"
