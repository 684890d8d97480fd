#!/usr/bin/env bash
# The PyPI tools HPTHammer's output is checked with in its tests, in a venv under the cache:
#   kcidb-io          the KCIDB schema (`hpthammer results kcidb` against kcidb_io's v5.3)
#   junitparser       junit.xml (each run's, and `hpthammer results junit`)
#   check-jsonschema  ci/'s pipelines against the GitHub workflow and GitLab CI schemas it carries
# Prints the venv's directory on stdout. Exit 125 with the reason on stderr when they cannot be
# installed (no python3 venv, PyPI not reachable): the tests that need them then skip, saying so.
# Idempotent and quick once installed; HPTHAMMER_PYTOOLS names another venv directory.
set -uo pipefail
venv=${HPTHAMMER_PYTOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/hpthammer/pytools}
reqs=(kcidb-io==141 junitparser==5.0.3 check-jsonschema==0.39.0)
stamp="$venv/.installed-$(echo "${reqs[*]}" | sha256sum | cut -c1-12)"
ready() {
  [ -f "$stamp" ] && "$venv/bin/python" -c 'import kcidb_io, junitparser' 2>/dev/null &&
    [ -x "$venv/bin/check-jsonschema" ]
}
if ready; then echo "$venv"; exit 0; fi
mkdir -p "$(dirname "$venv")" || { echo "ensure-pytools: cannot create $(dirname "$venv")" >&2; exit 125; }
# One installer at a time (tests run in parallel); the others wait for it and use its venv.
exec 9>"$venv.lock"
flock 9
if ready; then echo "$venv"; exit 0; fi
if ! python3 -m venv --clear "$venv" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq || true; } >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null 2>&1
  fi
  python3 -m venv --clear "$venv" >/dev/null 2>&1 ||
    { echo "ensure-pytools: python3 -m venv failed (install python3 and python3-venv)" >&2; exit 125; }
fi
if ! log=$("$venv/bin/pip" install -q --disable-pip-version-check "${reqs[@]}" 2>&1); then
  echo "ensure-pytools: pip install ${reqs[*]} failed (is PyPI reachable?): $(tail -3 <<<"$log")" >&2
  exit 125
fi
touch "$stamp"
echo "ensure-pytools: ${reqs[*]} in $venv" >&2
echo "$venv"
