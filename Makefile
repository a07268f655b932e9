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

## deps: what the tests need beyond the Rust toolchain: bubblewrap (sandboxes local steps), and
## the pinned MCP test peers in tests/mcp-peers (npm servers, Python SDK client), installed
## only when missing or when their manifests changed
MCP_PEERS := tests/mcp-peers

deps: $(MCP_PEERS)/node_modules/.package-lock.json $(MCP_PEERS)/.venv/.installed
	@command -v bwrap >/dev/null || { apt-get update -qq && apt-get install -y -qq bubblewrap; }

$(MCP_PEERS)/node_modules/.package-lock.json: $(MCP_PEERS)/package.json $(MCP_PEERS)/package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	npm ci --prefix $(MCP_PEERS) --no-audit --no-fund --loglevel=error
	@touch $@

$(MCP_PEERS)/.venv/.installed: $(MCP_PEERS)/requirements.txt
	@test -x $(MCP_PEERS)/.venv/bin/pip || python3 -m venv $(MCP_PEERS)/.venv || \
		{ apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv $(MCP_PEERS)/.venv; }
	$(MCP_PEERS)/.venv/bin/pip install -q --disable-pip-version-check -r $(MCP_PEERS)/requirements.txt
	@touch $@

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

clean:
	$(CARGO) clean
