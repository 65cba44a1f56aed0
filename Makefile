# The few verbs a user needs. Everything installs into .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
REPOSITORY ?= model_repository
# torch==2.13.0: the CPU wheel (a bare `torch` pulls several GB of CUDA packages on Linux).
TORCH ?= torch==2.13.0

# make serve / make perf
WORKDIR ?= .run
HTTP_PORT ?= 8000
GRPC_PORT ?= 8001
METRICS_PORT ?= 8002
GATEWAY_PORT ?= 8080
LOADER_PORT ?= 8090
DEFAULT_MODEL ?=
PERF_MODEL ?= $(DEFAULT_MODEL)
PERF_AUDIO ?=
PERF_CONCURRENCY ?= 1:4
PERF_INTERVAL_MS ?= 3000
# make test: pytest-xdist workers (the suite waits on servers a lot: two keep 2 cores busy)
TEST_WORKERS ?= 2

.PHONY: help install test lint export serve perf compose-up compose-down compose-test soak bench bench-idle \
	bench-streams bench-on-demand clean

help:
	@echo "make test                 install everything (.venv) and run the test suite (8-10 min on 2 cores)"
	@echo "make export MODEL=<id|dir> [NAME=name]   export a checkpoint into $(REPOSITORY)/"
	@echo "make serve                tritonserver (pip wheel) + gateway on 127.0.0.1:$(GATEWAY_PORT), until Ctrl-C"
	@echo "make perf PERF_MODEL=<name> PERF_AUDIO=<file>   perf_analyzer against a running 'make serve'"
	@echo "make compose-up           the container stack (docker compose, or podman) on :$(GATEWAY_PORT), until ready"
	@echo "make compose-down         stop it; remove its containers, network and volumes"
	@echo "make compose-test         the container stack brought up, faulted and torn down (podman or Docker)"
	@echo "make soak                 10,000 requests at concurrency 64 through gateway -> Triton: none lost or wrong"
	@echo "make bench                real-size models (wav2vec2, HuBERT, AST, Whisper): served vs transformers' pipeline"
	@echo "make bench-idle           CPU an idle 'make serve' uses with five real-size models (health checks included)"
	@echo "make bench-streams        how many real-time live-audio streams hold, vs the same windows POSTed"
	@echo "make bench-on-demand      a Hub id never exported (wav2vec2-base), from first request to first answer"
	@echo "make lint                 ruff"
	@echo "make clean                remove .venv and run state"

# Installed by purpose, each a stamp in the venv (a later one adds to the earlier): serving (the gateway, the
# steps, onnxruntime, the tritonserver wheel; no torch), exporting (torch, transformers, the loader), testing
# (browsers, synthesizers, moto, kubectl, ...). `make serve` with GATEWAY_AUTOLOAD set also needs exporting.
SERVE_STAMP := $(BIN)/.installed-serve
EXPORT_STAMP := $(BIN)/.installed-export
TEST_STAMP := $(BIN)/.installed

# The tritonserver wheel goes in last at each stage, without its dependencies: only its binary is used.
$(SERVE_STAMP): pyproject.toml local_triton/tritonserver-wheel.txt scripts/install-system-packages.sh
	scripts/install-system-packages.sh serve
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[local,gateway]"
	$(BIN)/pip install -q --no-deps -r local_triton/tritonserver-wheel.txt
	touch $@

$(EXPORT_STAMP): $(SERVE_STAMP)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[local,gateway,export,loader]"
	$(BIN)/pip install -q --no-deps -r local_triton/tritonserver-wheel.txt
	touch $@

$(TEST_STAMP): $(EXPORT_STAMP) scripts/install-kubectl.sh
	scripts/install-system-packages.sh test
	scripts/install-kubectl.sh $(BIN)
	$(BIN)/pip install -q -e ".[local,gateway,export,loader,test]"
	$(BIN)/pip install -q --no-deps -r local_triton/tritonserver-wheel.txt
	touch $@

install: $(TEST_STAMP)

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

export: $(EXPORT_STAMP)
	@test -n "$(MODEL)" || (echo "usage: make export MODEL=<hub id or folder> [NAME=name]"; exit 2)
	$(BIN)/python -m export "$(MODEL)" --repository "$(REPOSITORY)" $(if $(NAME),--name "$(NAME)")

# exec: the stack is make's own child, so a signal to make's PID (a service manager's SIGTERM) reaches it.
serve: $(if $(GATEWAY_AUTOLOAD),$(EXPORT_STAMP),$(SERVE_STAMP))
	exec $(BIN)/python -m local_triton serve --repository "$(REPOSITORY)" --workdir "$(WORKDIR)" \
		--http-port $(HTTP_PORT) --grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT) \
		--gateway-port $(GATEWAY_PORT) --loader-port $(LOADER_PORT) \
		$(if $(DEFAULT_MODEL),--default-model "$(DEFAULT_MODEL)")

perf: $(SERVE_STAMP)
	@test -n "$(PERF_MODEL)" -a -n "$(PERF_AUDIO)" || (echo "usage: make perf PERF_MODEL=<triton name> PERF_AUDIO=<audio file>"; exit 2)
	$(BIN)/python -m local_triton perf --model "$(PERF_MODEL)" --audio "$(PERF_AUDIO)" \
		--url 127.0.0.1:$(GRPC_PORT) --concurrency "$(PERF_CONCURRENCY)" --interval-ms $(PERF_INTERVAL_MS) \
		--workdir "$(WORKDIR)"

# The container stack: scripts/compose.sh picks the engine (docker compose, or podman + podman-compose) and
# the variant (GPU where nvidia-smi sees one, else the slim CPU image).
compose-up:
	GATEWAY_PORT=$(GATEWAY_PORT) scripts/compose.sh up

compose-down:
	scripts/compose.sh down

compose-test: install
	$(BIN)/python -m pytest -q -m containers tests/test_deploy

soak: install
	$(BIN)/python -m benchmarks.soak $(if $(SOAK_REQUESTS),--requests $(SOAK_REQUESTS))

# Real-size models side by side with transformers' pipeline (about 25 min on 2 cores), then the gateway's
# overhead and workers with the default model; results in benchmarks/results/.
bench: install
	$(BIN)/python -m benchmarks.real_size $(if $(BENCH_MODELS),--models $(BENCH_MODELS))
	$(BIN)/python -m benchmarks.serving_latency | tee benchmarks/results/serving_latency.txt

# An idle `make serve` with five real-size models (exports kept in .run/idle-cost): its CPU share, and the
# inferences its health machinery sends (none).
bench-idle: install
	$(BIN)/python -m benchmarks.idle_cost

bench-on-demand: install
	$(BIN)/python -m benchmarks.on_demand

# Real-time WebSocket streams (100 ms chunks, window 1 s / hop 0.5 s) against the default model and a
# real-size wav2vec2-base, beside the same windows POSTed one request each.
bench-streams: install
	$(BIN)/python -m benchmarks.stream_load

clean:
	rm -rf $(VENV) .run
