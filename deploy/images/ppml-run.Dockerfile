# syntax=docker/dockerfile:1.7
#
# ppml-run: the runtime a TEE runs (TDX and SEV-SNP confidential VMs, e.g.
# Kata / Confidential Containers; SGX uses ppml-run-sgx.Dockerfile). Only
# the runtime binary and the shared libraries it needs (glibc and the C++
# runtime from the distroless base, XGBoost and dmlc from Debian 12), user
# 65532, no shell.
#
#   docker build -f deploy/images/ppml-run.Dockerfile \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg COMMIT=$(git rev-parse HEAD) \
#     --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) \
#     --output type=image,name=ghcr.io/ppml/ppml-run:v0.4.0,rewrite-timestamp=true .
#
# The binary is built exactly as `make runtime` builds it, on Debian 12 with
# its gcc 12.2, so that `sha256sum /usr/local/bin/ppml-run` in the image
# equals a rebuild on a Debian 12 machine (docs/reproducible-builds.md).
# RUNTIME_TAGS leaves engines out (ppml_no_sql,ppml_no_ml: exec only).
# DEBIAN_SNAPSHOT pins the Debian packages to snapshot.debian.org.
#
# The exec engine runs programs from the image: a job that runs
# /usr/bin/python3 needs an image that has it (BASE_IMAGE); whatever the
# base, the job's program is pinned in its manifest (files: sha256).

ARG GO_IMAGE=golang:1.26.8-bookworm
ARG BASE_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${GO_IMAGE} AS build
ARG VERSION
ARG COMMIT
ARG RUNTIME_TAGS=
ARG DEBIAN_SNAPSHOT=
RUN test -n "$VERSION" && test -n "$COMMIT" || { echo "give --build-arg VERSION=… and COMMIT=… (git describe, git rev-parse HEAD): the binary states what it was built from" >&2; exit 1; }
RUN if [ -n "$DEBIAN_SNAPSHOT" ]; then \
      printf 'Types: deb\nURIs: http://snapshot.debian.org/archive/debian/%s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\nCheck-Valid-Until: no\n' "$DEBIAN_SNAPSHOT" > /etc/apt/sources.list.d/debian.sources; \
    fi \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libxgboost-dev make \
 && rm -rf /var/lib/apt/lists/*
ENV GOTOOLCHAIN=local GOFLAGS=-mod=readonly
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
# `make -o deps`: the packages are installed above; the Makefile's flags
# are the one definition of a reproducible build.
RUN --mount=type=cache,target=/root/go/pkg/mod \
    make -o deps runtime VERSION="${VERSION}" COMMIT="${COMMIT}" RUNTIME_TAGS="${RUNTIME_TAGS}" \
 && mkdir -p /out/lib \
 && cp bin/ppml-run /out/ppml-run \
 && cp -L /usr/lib/x86_64-linux-gnu/libxgboost.so.0 /usr/lib/x86_64-linux-gnu/libdmlc.so.0 /out/lib/ \
 && ldd /out/ppml-run

FROM ${BASE_IMAGE}
COPY --from=build --chown=0:0 --chmod=0444 /out/lib/ /usr/lib/x86_64-linux-gnu/
COPY --from=build --chown=0:0 --chmod=0555 /out/ppml-run /usr/local/bin/ppml-run
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ppml-run"]
CMD ["version"]
