#!/usr/bin/env bash
# Install the system packages credit_tasks needs when they are missing (Debian/Ubuntu):
# redis-server for the tests and the local Redis, python3-venv for the virtualenv,
# redis-sentinel for the failover test, prometheus (with promtool) for the metrics tests,
# chromium and its driver for the page's browser test. Nothing is downloaded from anywhere but
# the distribution's packages.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: ${missing[*]}; install them with your package manager and run make again" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing ${missing[*]} from the distribution's packages"
$sudo apt-get update -qq
# no service starts at install: the tests run their own prometheus on a free port
DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
