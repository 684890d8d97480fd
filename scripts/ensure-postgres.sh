#!/usr/bin/env bash
# Sourced by the test script: a throwaway PostgreSQL server (Debian's postgresql) for the
# results store's tests against PostgreSQL (Tests/HPTResultsTests/BackendTests.swift). It
# listens on 127.0.0.1 and a socket in a temporary directory, trusts local connections, and is
# stopped and removed when the sourcing script exits. Without it those tests skip and say why.
# HPTHAMMER_TEST_POSTGRES set beforehand (a server of your own) is used as it is.
if [ -z "${HPTHAMMER_TEST_POSTGRES:-}" ]; then
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$pg_bin" ] || ! command -v psql >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      ({ apt-get update -qq || true; } && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends postgresql >/dev/null) ||
        echo "hpthammer: could not install postgresql; the PostgreSQL store tests will skip" >&2
      pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    else
      echo "hpthammer: no PostgreSQL server: sudo apt-get install postgresql (the PostgreSQL store tests skip)" >&2
    fi
  fi
  if [ -n "$pg_bin" ]; then
    pg_dir=$(mktemp -d /tmp/hpthammer-pg.XXXXXX)
    pg_port=$((20000 + RANDOM % 20000))
    # initdb refuses root: the server runs as the postgres user when the script is root.
    pg_as=()
    if [ "$(id -u)" = 0 ]; then
      chown postgres "$pg_dir"
      pg_as=(runuser -u postgres --)
    fi
    if "${pg_as[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -A trust -U hpthammer >"$pg_dir/initdb.log" 2>&1 &&
      "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -o \
        "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=60 -c fsync=off" \
        start >/dev/null; then
      export HPTHAMMER_TEST_POSTGRES="postgres://hpthammer@127.0.0.1:$pg_port/postgres?sslmode=disable"
      pg_stop() {
        "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1
        rm -rf "$pg_dir"
      }
      trap pg_stop EXIT
      echo "hpthammer: PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') for the store tests on 127.0.0.1:$pg_port" >&2
    else
      echo "hpthammer: the PostgreSQL server did not start ($pg_dir/*.log); the PostgreSQL store tests skip" >&2
    fi
  fi
fi
