#!/usr/bin/env bash
# Installs the pinned tools ferry's demo and tests need into .tools/ (git-ignored).
# Reuses what is already there. Usage: scripts/tools.sh [minio] [goaws] [postgres] [s5cmd] [rclone]
#   [awscli] [fuse3] [geesefs] [s3fs]
# With no argument it installs what the tests need (minio, goaws, postgres).
# `scripts/tools.sh postgres` prints the directory of the PostgreSQL server's
# binaries on stdout (test.sh exports it as FERRY_POSTGRES_BIN).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.tools/bin"
mkdir -p "$bin"
export GOFLAGS=-mod=mod

# Pinned versions. Change only together with a note in docs/benchmarks.md.
# Each resolves on the module proxy (`go list -m MODULE@VERSION`); s5cmd's
# version list is refused (403) but the pinned version downloads.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
S5CMD_VERSION=v2.3.0
RCLONE_VERSION=v1.71.2
# geesefs: `go list -m` and the version list are refused (403) but
# `go mod download` of the pinned version works (see install_geesefs).
GEESEFS_VERSION=v0.43.8
# s3fs: Debian's package (bookworm: 1.90-1).
# postgres: Debian's package postgresql (bookworm: 15), the server the
# PostgreSQL catalog's tests start (internal/testutil/postgres.go).
POSTGRES_PACKAGE=postgresql
# goaws (SQS-compatible server for the SQS poller's tests): pinned in
# scripts/goaws/go.mod (github.com/Admiral-Piett/goaws v0.4.5) and go.sum.

stamp() { echo "$bin/.$1-$2"; }

install_minio() {
  if [ -x "$bin/minio" ] && [ -f "$(stamp minio $MINIO_VERSION)" ]; then return; fi
  echo "tools: building minio@$MINIO_VERSION (about 2 minutes on a fresh machine)" >&2
  GOBIN="$bin" go install "github.com/minio/minio@$MINIO_VERSION"
  touch "$(stamp minio $MINIO_VERSION)"
}

# go_build_module M V NAME: builds module M@V's main package into $bin/NAME.
# `go install M@V` is refused by the proxy for some modules (s5cmd), so this
# downloads the module and builds it in its own folder.
go_build_module() {
  local mod=$1 ver=$2 name=$3
  if [ -x "$bin/$name" ] && [ -f "$(stamp "$name" "$ver")" ]; then return; fi
  echo "tools: building $mod@$ver" >&2
  local dir
  dir=$(go mod download -json "$mod@$ver" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  (cd "$dir" && GOFLAGS=-mod=mod go build -o "$bin/$name" .)
  touch "$(stamp "$name" "$ver")"
}

# goaws: scripts/goaws is a small main around goaws's packages, a module of
# its own (go.mod and go.sum pin goaws), because goaws's own command listens
# on 0.0.0.0 and tests listen on 127.0.0.1 only. The stamp names a hash of
# the wrapper and its pins, so a change rebuilds it.
install_goaws() {
  local src="$root/scripts/goaws" sum
  sum=$(cat "$src/main.go" "$src/go.mod" "$src/go.sum" | sha256sum | cut -c1-12)
  if [ -x "$bin/goaws" ] && [ -f "$(stamp goaws "$sum")" ]; then return; fi
  echo "tools: building goaws (scripts/goaws)" >&2
  (cd "$src" && GOFLAGS=-mod=readonly go build -o "$bin/goaws" .)
  rm -f "$bin"/.goaws-*
  touch "$(stamp goaws "$sum")"
}

install_awscli() {
  if [ -x "$bin/aws" ]; then return; fi
  if [ -x /usr/bin/aws ]; then ln -sf /usr/bin/aws "$bin/aws"; return; fi
  echo "tools: installing Debian's awscli" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q awscli >/dev/null
  ln -sf /usr/bin/aws "$bin/aws"
}

# fusermount3 lets `ferry mount` work without root. As root (CI) ferry
# mounts with mount(2) itself and does not need it.
install_fuse3() {
  if command -v fusermount3 >/dev/null; then return; fi
  echo "tools: installing Debian's fuse3 (fusermount3)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q fuse3 >/dev/null
}

# geesefs (bench/mount's peer). Its go.mod replaces github.com/aws/aws-sdk-go
# with ./s3ext, a nested module (its own go.mod) that module zips leave out,
# and upstream aws-sdk-go lacks s3ext's PatchObject API: the module does not
# build from the module proxy. This tries (a later version may fix it) and
# says why it failed; a geesefs binary put in .tools/bin is used as it is.
install_geesefs() {
  if [ -x "$bin/geesefs" ]; then return; fi
  # set -e does not apply inside `|| true`: the binary tells whether it built.
  go_build_module github.com/yandex-cloud/geesefs "$GEESEFS_VERSION" geesefs || true
  if [ ! -x "$bin/geesefs" ]; then
    rm -f "$(stamp geesefs "$GEESEFS_VERSION")"
    echo "tools: geesefs@$GEESEFS_VERSION does not build from the module proxy: its go.mod replaces" \
      "github.com/aws/aws-sdk-go with ./s3ext, a nested module missing from the module zip" >&2
    return 1
  fi
}

# s3fs (bench/mount's peer) comes from Debian. Its package depends on "fuse",
# which fuse3 provides: installing both at once keeps fusermount3.
install_s3fs() {
  if command -v s3fs >/dev/null && command -v fusermount3 >/dev/null; then return; fi
  echo "tools: installing Debian's s3fs and fuse3" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q fuse3 s3fs >/dev/null
}

# postgres_bin prints the newest /usr/lib/postgresql/*/bin holding a server.
postgres_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
    if [ -x "$d/postgres" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  done
  return 1
}

# The tests run the server themselves, as the user postgres when they run as
# root (the package creates that user); the package's own cluster service is
# not used (policy-rc.d-less containers do not start it anyway).
install_postgres() {
  if ! postgres_bin >/dev/null; then
    echo "tools: installing Debian's $POSTGRES_PACKAGE" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$POSTGRES_PACKAGE" >/dev/null
  fi
  postgres_bin || { echo "tools: $POSTGRES_PACKAGE installed but no /usr/lib/postgresql/*/bin/postgres" >&2; return 1; }
}

[ $# -eq 0 ] && set -- minio goaws postgres
for t in "$@"; do
  case "$t" in
    minio) install_minio ;;
    goaws) install_goaws ;;
    postgres) install_postgres ;;
    s5cmd) go_build_module github.com/peak/s5cmd/v2 "$S5CMD_VERSION" s5cmd ;;
    rclone) go_build_module github.com/rclone/rclone "$RCLONE_VERSION" rclone ;;
    awscli) install_awscli ;;
    fuse3) install_fuse3 ;;
    geesefs) install_geesefs ;;
    s3fs) install_s3fs ;;
    *) echo "tools: unknown tool $t" >&2; exit 2 ;;
  esac
done
