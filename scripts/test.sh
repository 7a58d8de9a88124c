#!/usr/bin/env bash
# Installs what the tests need (pinned, into .tools/) and runs every test.
# CI runs exactly this (through .ci/run); with CI=true a missing dependency
# fails the run instead of skipping tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/tools.sh minio goaws
export FERRY_MINIO="$PWD/.tools/bin/minio"
export FERRY_GOAWS="$PWD/.tools/bin/goaws"
FERRY_POSTGRES_BIN=$(scripts/tools.sh postgres)
export FERRY_POSTGRES_BIN
go vet ./...
# Formatting and go.mod stay tidy: a diff here fails the run.
unformatted=$(gofmt -l cmd internal bench)
if [ -n "$unformatted" ]; then echo "gofmt needed: $unformatted" >&2; exit 1; fi
go mod tidy -diff
go test -race -count=1 -timeout 30m ./...
