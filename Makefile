# The few verbs a user needs. Everything installs into .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
REPOSITORY ?= model_repository
# torch==2.13.0: the CPU wheel (a bare `torch` pulls several GB of CUDA packages on Linux).
TORCH ?= torch==2.13.0

.PHONY: help install test lint export clean

help:
	@echo "make test                 install everything (.venv) and run the test suite"
	@echo "make export MODEL=<id|dir> [NAME=name]   export a checkpoint into $(REPOSITORY)/"
	@echo "make lint                 ruff"
	@echo "make clean                remove .venv and run state"

$(BIN)/.installed: pyproject.toml scripts/install-system-packages.sh
	scripts/install-system-packages.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	# nvidia-pytriton first and without its dependencies: only its tritonserver binary is used
	$(BIN)/pip install -q --no-deps "nvidia-pytriton==0.7.0"
	$(BIN)/pip install -q -e ".[local,gateway,export,test]"
	touch $@

install: $(BIN)/.installed

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

export: install
	@test -n "$(MODEL)" || (echo "usage: make export MODEL=<hub id or folder> [NAME=name]"; exit 2)
	$(BIN)/python -m export "$(MODEL)" --repository "$(REPOSITORY)" $(if $(NAME),--name "$(NAME)")

clean:
	rm -rf $(VENV) .run
