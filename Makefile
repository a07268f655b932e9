# Kubiya agent server. `make run` starts it; `make test` is what CI runs.
CARGO ?= cargo
ARGS ?=

.PHONY: run build test test-only lint fmt fmt-check deps clean

## run: build (release) and start the agent server on port 8000 with the built-in defaults
run:
	$(CARGO) run --release --bin kubiya -- mcp agent $(ARGS)

build:
	$(CARGO) build --workspace

## test: formatting check, clippy with -D warnings, then every test
test: deps fmt-check lint test-only

test-only:
	$(CARGO) test --workspace --all-targets

VENV := .venv
CLIENTS := tests/clients

## deps: what the tests need beyond the Rust toolchain: bubblewrap (sandboxes local steps),
## redis-server (the replica tests share a real one), and the real client SDKs the tests
## read our streams with, pinned in tests/clients/
deps: $(VENV)/.installed $(CLIENTS)/node_modules/.package-lock.json
	@command -v bwrap >/dev/null || { apt-get update -qq && apt-get install -y -qq bubblewrap; }
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }

$(VENV)/.installed: $(CLIENTS)/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r $(CLIENTS)/requirements.txt
	touch $@

$(CLIENTS)/node_modules/.package-lock.json: $(CLIENTS)/package-lock.json
	cd $(CLIENTS) && npm ci --no-audit --no-fund

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

clean:
	$(CARGO) clean
