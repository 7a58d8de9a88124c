# ferry — the two commands of the README are the contract:
#   make demo   builds ferry, installs a pinned MinIO, runs the main job on sample data
#   make test   installs every test dependency and runs all tests
.PHONY: build demo test tools vet bench

build:
	go build -o .tools/bin/ferry ./cmd/ferry

tools:
	scripts/tools.sh minio

demo: build tools
	scripts/demo.sh

test: tools
	scripts/test.sh

vet:
	go vet ./...

bench: build
	bench/run.sh
