# Kubiya agent server. `make run` starts it; `make test` is what CI runs.
CARGO ?= cargo
ARGS ?=

.PHONY: run build test test-only bench lint fmt fmt-check deps clean

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


$(VENV)/.installed: $(CLIENTS)/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r $(CLIENTS)/requirements.txt
	touch $@

$(CLIENTS)/node_modules/.package-lock.json: $(CLIENTS)/package-lock.json
	cd $(CLIENTS) && npm ci --no-audit --no-fund

# The current AI SDK with the Node 22 it needs (the npm package `node`), and the oldest 5.x.
$(CLIENTS)/ai7/node_modules/.package-lock.json: $(CLIENTS)/ai7/package-lock.json
	cd $(CLIENTS)/ai7 && npm ci --no-audit --no-fund --loglevel=error

$(CLIENTS)/ai5/node_modules/.package-lock.json: $(CLIENTS)/ai5/package-lock.json
	cd $(CLIENTS)/ai5 && npm ci --no-audit --no-fund --loglevel=error
MCP_PEERS := tests/mcp-peers

## deps: what the tests need beyond the Rust toolchain, all pinned in the repository and
## installed only when missing or when their manifests changed: bubblewrap (sandboxes local
## steps; the sandbox shows steps /usr only, so the escape tests need Debian's python3 there),
## redis-server (the replica tests share a real one), the real client SDKs that read
## our streams (tests/clients: ai 4, 5.0.0 and 7 with Node 22, openai), and the MCP test peers (tests/mcp-peers: npm servers and the
## Python SDK client)
deps: $(VENV)/.installed $(CLIENTS)/node_modules/.package-lock.json \
		$(CLIENTS)/ai7/node_modules/.package-lock.json $(CLIENTS)/ai5/node_modules/.package-lock.json \
		$(MCP_PEERS)/node_modules/.package-lock.json $(MCP_PEERS)/.venv/.installed
	@command -v bwrap >/dev/null || { apt-get update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq bubblewrap; }
	@test -x /usr/bin/python3 || { apt-get update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq python3; }
	@command -v setpriv >/dev/null || { apt-get update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq util-linux; }
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }

$(MCP_PEERS)/node_modules/.package-lock.json: $(MCP_PEERS)/package.json $(MCP_PEERS)/package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	npm ci --prefix $(MCP_PEERS) --no-audit --no-fund --loglevel=error
	@touch $@

$(MCP_PEERS)/.venv/.installed: $(MCP_PEERS)/requirements.txt
	@test -x $(MCP_PEERS)/.venv/bin/pip || python3 -m venv $(MCP_PEERS)/.venv || \
		{ apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv $(MCP_PEERS)/.venv; }
	$(MCP_PEERS)/.venv/bin/pip install -q --disable-pip-version-check -r $(MCP_PEERS)/requirements.txt
	@touch $@

## bench: the budgets of DESIGN.md measured against the release binary (prints measured vs budget)
bench:
	$(CARGO) bench --bench gateway

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

clean:
	$(CARGO) clean
