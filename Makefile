# Potluck build, test and benchmark entry points. `make help` lists them.
GO        ?= go
BIN       := bin
BINARIES  := $(notdir $(wildcard cmd/*))
PKGS      := ./...
# Tests that need root (network namespaces) run in CI; see .ci/run.
TESTFLAGS ?= -race -count=1 -timeout 20m
# --version of every binary: the release from git describe, the commit (also
# when GOFLAGS=-buildvcs=false leaves no VCS stamp) and the Go version.
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -X potluck/internal/version.release=$(VERSION) -X potluck/internal/version.commit=$(COMMIT)
GOBUILD   := $(GO) build -trimpath -ldflags '$(LDFLAGS)'
# Go benchmarks: BENCHTIME per benchmark, BENCHCOUNT runs each (make bench).
BENCHTIME ?= 1s
BENCHCOUNT ?= 1

.PHONY: demo demo-check demo-stop app-image help build test test-short chaos lint fmt vet bench bench-meshnet bench-nginx bench-geo bench-table bench-autoscale bench-placement bench-faults bench-tls bench-e2e bench-fleet bench-bin clean deps

help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## build every binary into bin/
	@mkdir -p $(BIN)
	@for b in $(BINARIES); do \
		if ls cmd/$$b/*.go >/dev/null 2>&1; then \
			echo "go build -o $(BIN)/$$b ./cmd/$$b ($(VERSION))"; $(GOBUILD) -o $(BIN)/$$b ./cmd/$$b || exit 1; \
		fi; \
	done

deps: ## install what the tests need (idempotent; root on Debian)
	bash scripts/install-deps.sh --docker

# Whole-system suites (real processes, containers, faults) run after the
# rest, one package at a time: on a 2-core machine, sharing it with other
# packages' tests starves their timing. They include a 25 s porcupine run
# (e2e/chaos TestLinearizable); `make chaos` runs it longer.
SYSTEM_PKGS := ./e2e/...

test: lint ## everything CI runs: lint, all tests with the race detector, then make demo as a user runs it
	$(GO) test $(TESTFLAGS) $$($(GO) list $(PKGS) | grep -v '/e2e')
	$(GO) test $(TESTFLAGS) -p 1 $(SYSTEM_PKGS)
	bash scripts/demo-check.sh

test-short: ## quick tests only (no slow recovery or namespace tests)
	$(GO) test -short -count=1 $(PKGS)

# make chaos: how long the clients run while the nemesis injects faults.
CHAOS_DURATION ?= 3m

chaos: ## linearizability under faults: 3 potluck-core processes, kill -9 / SIGSTOP / partitions (root: iptables) for CHAOS_DURATION=3m; prints operations, faults and the verdict
	CHAOS_DURATION=$(CHAOS_DURATION) $(GO) test -race -count=1 -v -timeout 60m -run '^TestLinearizable$$' ./e2e/chaos/

lint: fmt vet ## gofmt check and go vet

fmt:
	@out=$$(find . -name '*.go' -not -path './.git/*' -not -path './.demo/*' | xargs gofmt -l); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

bench: ## every Go benchmark in the repo (BENCHTIME=1s BENCHCOUNT=1; bench-meshnet runs meshnet's longer)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) -timeout 30m $(PKGS)

bench-meshnet: ## meshnet: HTTP req/s and MB/s through the tunnel vs loopback, with and without 20 ms RTT
	$(GO) test -run '^$$' -bench . -benchtime 3s -count 3 ./meshnet/

APP_IMAGE ?= potluck-sample-app:latest

app-image: ## build the sample app image (FROM scratch, offline) and its docker save tarball bin/app-image.tar
	bash scripts/docker-up.sh
	$(GO) run ./bench/appimage/build -o $(BIN)/app-image.tar -tag $(APP_IMAGE)

# bench-bin builds bin/potluck-bench, stamped like make build, for the
# bench-* targets that run it.
bench-bin:
	@mkdir -p $(BIN)
	$(GOBUILD) -o $(BIN)/potluck-bench ./cmd/potluck-bench

bench-nginx: ## lb vs NGINX: req/s, p50, p99 of nginx, potluck-front, potluck-front with pipelined backends and a bare fasthttp proxy on the same backends (wrk -c64, 3 rounds)
	bash scripts/install-deps.sh --bench
	@mkdir -p $(BIN)
	$(GOBUILD) -o $(BIN)/potluck-front ./cmd/potluck-front
	$(GOBUILD) -o $(BIN)/nginxcmp ./bench/nginxcmp
	$(BIN)/nginxcmp --front $(BIN)/potluck-front $(BENCH_NGINX_FLAGS)

bench-tls: ## HTTPS: potluck-front (standalone, tls:; also with pipelined backends) vs NGINX (listen ssl http2) on the same backends: TLS handshakes/s, HTTP/1.1 req/s over keep-alive TLS (wrk), h2 req/s (h2load); ROUNDS=3 DURATION=5 CONNS=64
	bash scripts/install-deps.sh --bench
	@mkdir -p $(BIN)
	$(GOBUILD) -o $(BIN)/potluck-front ./cmd/potluck-front
	$(GOBUILD) -o $(BIN)/nginxcmp ./bench/nginxcmp
	BIN=$(BIN) bash scripts/bench-tls.sh

bench-geo: app-image bench-bin ## the paper's Table 1 on simulated geography: local clusters with WAN delay, Docker, ~15 min (BENCH_GEO_FLAGS="--runs 2" for a quick look)
	$(BIN)/potluck-bench geo --image $(BIN)/app-image.tar $(BENCH_GEO_FLAGS)

bench-placement: bench-bin ## placement policies simulated through the real scheduler: denials, free Backs, fragmentation for spread vs pack (~5 min; BENCH_PLACEMENT_FLAGS="--seeds 2 --hosts 50" for a quick look)
	$(BIN)/potluck-bench placement $(BENCH_PLACEMENT_FLAGS)

bench-table: bench-bin ## the paper's Table 1 method against your targets: BENCH_TABLE_FLAGS="--target NAME=URL[,host=HOST] ..."
	$(BIN)/potluck-bench table $(BENCH_TABLE_FLAGS)

bench-autoscale: bench-bin ## autoscaling simulation: the seed's table, reactive-only vs combined vs HPA-style on 8 load profiles, ~1 min (BENCH_AUTOSCALE_FLAGS="--regime potluck --sweep interval")
	$(BIN)/potluck-bench autoscale $(BENCH_AUTOSCALE_FLAGS)

bench-faults: app-image bench-bin ## the data plane under faults: a demo cluster under open-loop load while a container, a Back and the Front are killed in turn, ~4 min (BENCH_FAULTS_FLAGS="--rate 100 --scenario-seconds 20")
	$(BIN)/potluck-bench faults --image $(BIN)/app-image.tar $(BENCH_FAULTS_FLAGS)

bench-e2e: bench-bin ## the data path against NGINX on a real cluster: Front over the mesh vs NGINX vs standalone Front on the same containers (sample app, fast app), req/s p50 p99 CPU/req, streams; ~3 min (BENCH_E2E_FLAGS="--rounds 5 --profile-dir /tmp/prof")
	bash scripts/install-deps.sh --bench
	bash scripts/docker-up.sh
	$(BIN)/potluck-bench e2e $(BENCH_E2E_FLAGS)

# make bench-fleet: the sizes run (pairs of --hosts and --instances).
BENCH_FLEET_FLAGS ?= --hosts 100,1000 --instances 2000,20000

bench-fleet: bench-bin ## the control plane at fleet scale: 3 potluck-core processes, simulated hosts through the agent API handlers; placements/s, API p99, heartbeats, leader CPU/RSS, snapshot, catch-up (BENCH_FLEET_FLAGS="--hosts 5000 --instances 100000")
	$(GOBUILD) -o $(BIN)/potluck-core ./cmd/potluck-core
	$(BIN)/potluck-bench fleet --core-bin $(BIN)/potluck-core $(BENCH_FLEET_FLAGS)

demo: ## start a local cluster (3 core, 1 Front, 2 Backs), deploy the sample app, print how to use it
	bash scripts/demo.sh

demo-check: ## run make demo on ports of its own, run it twice, stop it (part of make test)
	bash scripts/demo-check.sh

demo-stop: ## stop the demo and remove its containers and networks (state stays in .demo/)
	bash scripts/demo-stop.sh

clean:
	rm -rf $(BIN)
