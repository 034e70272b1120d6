# ppml — build, test and demo. Two commands matter on a fresh machine:
#   make demo   installs what is missing, builds, runs the end-to-end demo
#   make test   installs what is missing, runs the whole test suite
SHELL := /bin/bash
GO    ?= go
SUDO  := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PREFIX ?= /usr/local
# System packages the build and the tests need (Debian 12 names).
APT_PKGS := gcc g++ jq libxgboost-dev python3 python3-xgboost python3-numpy python3-cryptography redis-server \
            python3-pytest python3-requests python3-pandas python3-venv python3-setuptools python3-redis \
            libtorch-dev python3-torch dataset-fashion-mnist
FUZZTIME ?= 60s
# Public datasets the ML examples and tests use (fetched from npm and Debian, cached).
DATASETS ?= $(HOME)/.cache/ppml/datasets

# Reproducible builds (docs/reproducible-builds.md): no file system paths
# (-trimpath), no VCS stamp or build id that differs between checkouts; the
# version and commit are stamped explicitly, the same for every clone of a
# commit. The toolchain is pinned by go.mod's toolchain line.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -buildid= -X github.com/ppml/ppml/internal/buildinfo.Version=$(VERSION) -X github.com/ppml/ppml/internal/buildinfo.Commit=$(COMMIT)
BUILD   := $(GO) build -trimpath -buildvcs=false -ldflags "$(LDFLAGS)"
# Engines left out of bin/ppml-run, e.g. RUNTIME_TAGS=ppml_no_sql,ppml_no_ml,ppml_no_serve,ppml_no_stream,ppml_no_dl
# for an exec-only runtime (docs/engines.md). The dl engine is never in bin/ppml-run: libtorch's
# ~280 shared libraries would slow every job's start and widen what an enclave trusts, so it
# lives in bin/ppml-run-dl (every engine; DL_RUNTIME_TAGS leaves others out), which `ppml run`
# picks for dl jobs.
RUNTIME_TAGS ?=
DL_RUNTIME_TAGS ?=
comma := ,
RUN_TAGS := ppml_no_dl$(if $(strip $(RUNTIME_TAGS)),$(comma)$(strip $(RUNTIME_TAGS)))

.PHONY: all deps datasets build runtime runtime-dl install test fmt-check demo fuzz bench reproducible-check clean
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

# bin/ppml (CLI and key service: no engine, no cgo), bin/ppml-run and
# bin/ppml-run-dl (the runtimes a TEE measures), bin/ppml-bench (benchmarks).
build: deps runtime runtime-dl
	CGO_ENABLED=0 $(BUILD) -o bin/ppml ./cmd/ppml
	$(BUILD) -o bin/ppml-bench ./cmd/ppml-bench

runtime: deps
	$(BUILD) -tags "$(RUN_TAGS)" -o bin/ppml-run ./cmd/ppml-run

runtime-dl: deps
	$(BUILD) -tags "$(DL_RUNTIME_TAGS)" -o bin/ppml-run-dl ./cmd/ppml-run

install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 bin/ppml bin/ppml-run bin/ppml-run-dl bin/ppml-bench $(DESTDIR)$(PREFIX)/bin/

# Builds bin/ppml-run in two copies of the tree at different paths, each
# with a Go build cache of its own, and compares them byte for byte.
reproducible-check: deps
	VERSION=$(VERSION) COMMIT=$(COMMIT) ./scripts/reproducible-check.sh

# The Python SDK's tests run on Debian's interpreter (/usr/bin/python3, which has the Debian
# packages; a python3 earlier on PATH, e.g. pyenv's, may not).
PYTHON ?= /usr/bin/python3

# The docs tests and the Python tests run ppml, ppml-run (without the dl engine: no test runs a dl
# job, and linking libtorch is slow) and ppml-bench, built here once into a temporary directory
# with the flags go test uses (so from its build cache: a link each) and so current, rather than
# each building its own.
test: deps datasets fmt-check
	$(GO) vet ./...
	T=$$(mktemp -d) && trap 'rm -rf "$$T"' EXIT && \
	$(GO) build -o "$$T/" ./cmd/ppml ./cmd/ppml-bench && \
	$(GO) build -tags ppml_no_dl -o "$$T/ppml-run" ./cmd/ppml-run && \
	PPML_DOCSTEST_BIN="$$T" PPML_DATASETS=$(DATASETS) $(GO) test -timeout 20m ./... && \
	PPML_BIN="$$T/ppml" $(PYTHON) -m pytest -q -p no:cacheprovider python/tests

# Every Go file as gofmt writes it (the toolchain's own gofmt, beside the go command).
fmt-check:
	@u=$$("$$($(GO) env GOROOT)/bin/gofmt" -l $$(find . -name '*.go' -not -path './.git/*')) && \
	if [ -n "$$u" ]; then echo "not formatted by gofmt (run gofmt -w on them):"; echo "$$u"; exit 1; fi

demo: build
	./bin/ppml demo

# Runs every fuzz target for FUZZTIME each (make fuzz FUZZTIME=3m) and prints
# execs/s per target; scripts/fuzz.sh says why minimization is bounded.
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

bench: build
	./bin/ppml bench envelope

clean:
	rm -rf bin
