#!/usr/bin/env bash
# A Docker engine of the test suite's own: `engine.sh start` prints the DOCKER_HOST to
# export, `engine.sh stop` ends it. Installs docker.io, docker-compose and debootstrap
# from Debian's packages when missing.
#
# The engine routes nothing off the machine: no iptables rules, no IP forwarding, no
# masquerading. Containers on its bridges reach each other and the host's published
# ports (docker-proxy on 127.0.0.1), nothing else; image builds that need the package
# registries run with --network host (tests/container_path/standins.sh, tests/container_path/test_*.py).
# Data (images, the build cache) stays in $TURNOUT_DOCKER_ROOT between runs on one
# machine, so stand-ins are built once.
set -euo pipefail

ROOT="${TURNOUT_DOCKER_ROOT:-/var/lib/turnout-docker}"
RUN="${TURNOUT_DOCKER_RUN:-/run/turnout-docker}"
SOCK="unix://$RUN/docker.sock"

need_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

running() { DOCKER_HOST="$SOCK" docker version >/dev/null 2>&1; }

start() {
  if [ "$(id -u)" -ne 0 ]; then echo "engine.sh: dockerd needs root" >&2; exit 1; fi
  need_packages
  mkdir -p "$ROOT" "$RUN"
  if ! running; then
    # Addresses of the engine's own bridges, away from the usual 172.17/16.
    dockerd --data-root "$ROOT" --exec-root "$RUN/exec" --pidfile "$RUN/docker.pid" \
      -H "$SOCK" --iptables=false --ip-forward=false --ip-masq=false \
      --bip 172.29.255.1/24 --default-address-pool base=172.30.0.0/16,size=24 \
      >"$RUN/dockerd.log" 2>&1 &
    for _ in $(seq 1 120); do running && break; sleep 0.5; done
    running || { echo "engine.sh: dockerd did not start; see $RUN/dockerd.log" >&2; exit 1; }
  fi
  echo "export DOCKER_HOST=$SOCK"
}

stop() {
  [ -f "$RUN/docker.pid" ] || return 0
  local pid; pid=$(cat "$RUN/docker.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
