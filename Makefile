# kshop — the two commands that matter are `make run` and `make test`.
SHELL := /bin/bash
GO    ?= go
BENCH ?= .

.PHONY: run test cluster-test chaos fuzz smoke load kind-up kind-down cluster-up cluster-down dev bench bench-gateway lint build testenv-up testenv-down help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

run: ## start the platform locally (infrastructure and the all-in-one binary); Ctrl-C stops it
	@hack/run.sh

test: ## install what is missing, start private servers, go vet, go test -race, stop servers
	@hack/test.sh

cluster-test: ## the chart on a real one-node Kubernetes: install, helm test, rolling upgrade, HPA, PDB, NetworkPolicy (own cluster and servers)
	@hack/cluster-test.sh

chaos: ## load the platform while RabbitMQ, Kafka and PostgreSQL restart, then reconcile everything (own servers)
	@hack/chaos.sh

fuzz: ## run every Go fuzz target for FUZZTIME each (default 15s); MATCH=pattern for some
	@hack/fuzz.sh '$(or $(MATCH),.)'

bench: ## print the benchmark table (BENCH=pattern: only the matching Go benchmarks); servers of its own
	@hack/bench.sh '$(BENCH)'

smoke: ## walk the customer journey through a running `make run` (fails on any deviation)
	@hack/loadgen.sh smoke

load: ## an open-loop load run against a running `make run` (ARGS="-rate 100 -duration 1m")
	@hack/loadgen.sh load $(ARGS)

kind-up: ## create the kind cluster (needs Docker) with metrics-server; idempotent
	@hack/kind.sh up

kind-down: ## delete the kind cluster
	@hack/kind.sh down

cluster-up: ## start a one-node Kubernetes on this machine without Docker (as root); then use hack/cluster.sh env
	@hack/cluster.sh up

cluster-down: ## stop that cluster and put the machine back as it was
	@hack/cluster.sh down

dev: ## skaffold dev on the kind cluster (build, deploy, follow; PROFILE=full for observability)
	@"$$(hack/tools.sh skaffold)" dev --kube-context kind-kshop $(if $(PROFILE),--profile $(PROFILE))

bench-gateway: ## requests/s and p99 through the gateway vs direct to the upstream, and their ratio
	@BENCHTIME=20000x hack/bench.sh GatewayVsDirect

lint: ## gofmt check, go vet, staticcheck
	@hack/lint.sh

build: ## compile every package and binary
	$(GO) build ./...

testenv-up: ## start the private test servers and keep them (then: eval "$$(hack/testenv.sh env)")
	@hack/install-deps.sh
	@hack/testenv.sh up

testenv-down: ## stop the private test servers
	@hack/testenv.sh down
