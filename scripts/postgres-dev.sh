#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback for shared tuning studies: the distributed-study tests use it,
# and so can a developer trying `mdm-energy tune --storage postgresql://...` by hand. Installs Debian's
# postgresql package when no server is found. Prints the server's URL.
#
#   scripts/postgres-dev.sh [start|stop|restart|url]      (default: start)
#
# restart: a fast restart (pg_ctl restart -m fast) of a running server, as for maintenance: open connections
# are cut and the server is back a moment later; the tests use it to check that tuning workers ride it out.
#
# Data in $MDM_PG_DIR (default /tmp/mdm-energy-pg), port $MDM_PG_PORT (default 54329), database
# mdm_energy, user mdm, no password (trust, loopback only: never expose this server).
set -euo pipefail
DIR=${MDM_PG_DIR:-/tmp/mdm-energy-pg}
PORT=${MDM_PG_PORT:-54329}
URL="postgresql://mdm@127.0.0.1:${PORT}/mdm_energy"

bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
# PostgreSQL refuses to run as root: as root, run it as the postgres user the Debian package creates.
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "${1:-start}" in
  url) echo "$URL"; exit 0 ;;
  stop)
    BIN=$(bin_dir || true)
    [ -n "$BIN" ] && [ -d "$DIR" ] && as_owner "$BIN/pg_ctl" -D "$DIR" stop -m fast >/dev/null 2>&1 || true
    exit 0 ;;
  restart)
    BIN=$(bin_dir)
    as_owner "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -t 60 restart -m fast >/dev/null
    exit 0 ;;
  start) ;;
  *) echo "usage: $0 [start|stop|restart|url]" >&2; exit 2 ;;
esac

BIN=$(bin_dir || true)
if [ -z "$BIN" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
  BIN=$(bin_dir)
fi
if ! as_owner "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
  if [ ! -s "$DIR/PG_VERSION" ]; then
    mkdir -p "$DIR"
    [ "$(id -u)" = 0 ] && chown postgres: "$DIR"
    as_owner "$BIN/initdb" -D "$DIR" -U mdm --auth=trust -E UTF8 >/dev/null
  fi
  as_owner "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -t 60 \
    -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
fi
if ! as_owner "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U mdm -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'mdm_energy'" | grep -q 1; then
  as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U mdm mdm_energy
fi
echo "$URL"
