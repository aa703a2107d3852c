#!/usr/bin/env bash
# Print a REDIS_URL that answers: $REDIS_URL when set, else a Redis on localhost:6379, else a
# project-local redis-server started on port 6399 with its data in .redis/.
set -euo pipefail

if [ -n "${REDIS_URL:-}" ]; then echo "$REDIS_URL"; exit 0; fi
if redis-cli -p 6379 ping >/dev/null 2>&1; then echo "redis://localhost:6379/0"; exit 0; fi
port=6399
if ! redis-cli -p "$port" ping >/dev/null 2>&1; then
  mkdir -p .redis
  redis-server --port "$port" --bind 127.0.0.1 --dir "$PWD/.redis" --daemonize yes \
    --pidfile "$PWD/.redis/redis.pid" --logfile "$PWD/.redis/redis.log" >/dev/null
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  echo "started a local redis-server on 127.0.0.1:$port (data in .redis/; stop it with make stop-redis)" >&2
fi
echo "redis://127.0.0.1:$port/0"
