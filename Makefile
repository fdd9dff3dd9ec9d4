# fastfs — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
# CI sets CI=true: tests that lack a prerequisite fail instead of skipping.
export FASTFSD_TEST_STRICT ?= $(if $(filter true,$(CI)),1,0)
TEST_TIMEOUT ?= 25m
FUZZTIME ?= 20s
BIN := bin

.DEFAULT_GOAL := help

help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## Install what builds and tests need (apt packages, guest kernel); idempotent.
	@bash scripts/deps.sh

build: ## Build fastfsd (static, CGO_ENABLED=0: the namespace sandbox needs it; a copy for guests) into bin/; check arm64 compiles.
	CGO_ENABLED=0 $(GO) build -o $(BIN)/fastfsd ./cmd/fastfsd
	cp $(BIN)/fastfsd $(BIN)/fastfsd-static
	$(GO) build -o $(BIN)/fastfs-run ./perf/bench/cmd/fastfs-run
	$(GO) build -o $(BIN)/fastfs-bench ./perf/bench/cmd/fastfs-bench
	$(GO) build -o $(BIN)/fastfs-backendbench ./cmd/fastfs-backendbench
	$(GO) build -o $(BIN)/fastfs-nullfuse ./cmd/fastfs-nullfuse
	GOARCH=arm64 $(GO) vet ./... >/dev/null

peers: ## Build the peers measured against (go-fuse loopback and virtio-fs) into bin/peers/.
	cd perf/peers && $(GO) build -o ../../$(BIN)/peers/ ./gofuse-virtiofs ./gofuse-loopback github.com/hanwen/go-fuse/v2/example/loopback

run: deps build ## The main job: boot a guest on fastfsd's virtio-fs, run fio in it, print results, in-guest latency and daemon stats.
	$(BIN)/fastfs-run -json out/run.json

generate: ## Regenerate the BPF objects (bpf2go; needs clang) and check nothing else changed.
	$(GO) generate ./...

lint: ## gofmt and go vet (the import-direction check is internal/importcheck's test, run by make test).
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test-unit: ## Fast unprivileged tests (no QEMU), with -race.
	FASTFSD_TEST_STRICT=0 $(GO) test -race -count=1 -short -timeout 10m ./...

# test/dos runs alone after the rest: its tests compare a second client's p99
# under attack with the p99 it measured idle a moment before, which another
# test package sharing the 2 CPUs in between would make a test of the neighbour.
test: deps lint build ## Everything CI runs: -race, root and /dev/fuse tests, fuzz seeds, QEMU e2e, benchmark smoke.
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v '/test/dos$$')
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./test/dos
	GOMAXPROCS=1 $(GO) test -count=1 -short -timeout 10m ./fs/... ./fuse/... ./ring/... ./mem/... ./p9/... ./vhostuser/... ./dataplane/... ./dax/...
	$(GO) test -count=1 -run '^$$' -bench . -benchtime=1x -timeout 10m ./...

fuzz: ## Run each Fuzz target for FUZZTIME (one target per go test -fuzz run).
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

bench: deps build peers ## Host side by side: fio + metadata on native tmpfs, fastfsd mount, go-fuse; then Go hot-path benchmarks.
	$(BIN)/fastfs-bench -out out/bench
	@mkdir -p out && $(GO) test -run '^$$' -bench . -benchmem -count=5 ./fuse/... ./ring/... ./mem/... ./p9/... ./internal/stats/... | tee out/gobench.txt

bench-backend: deps build peers ## No guest: drive fastfsd, the C virtiofsd and go-fuse's virtio-fs over vhost-user with a fixed request mix on 1 and 2 queues; requests/s and back-end CPU per request.
	@mkdir -p out/bench-backend
	$(BIN)/fastfs-backendbench -json out/bench-backend/bench.json | tee out/bench-backend/bench.txt

bench-guest: deps build peers ## In one QEMU guest: fio on fastfsd, C virtiofsd, go-fuse virtio-fs, virtio-9p and fastfsd's 9P door in the guest (ratios to 9p and to the C virtiofsd).
	$(BIN)/fastfs-run -compare -out out/bench-guest

flamegraphs: deps build ## Profile fastfsd under each host workload and render flame graphs into flamegraphs/.
	$(BIN)/fastfs-bench -flamegraphs flamegraphs -fastfsd-flags=--passthrough=false

.PHONY: help deps build peers run generate lint test-unit test fuzz bench bench-backend bench-guest flamegraphs
