# syntax=docker/dockerfile:1.7
#
# ppml: the CLI and the key service (`ppml server`). A static Go binary
# (no cgo) on a distroless base: no shell, no package manager, user 65532.
#
#   docker build -f deploy/images/ppml.Dockerfile \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg COMMIT=$(git rev-parse HEAD) \
#     --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) \
#     --output type=image,name=ghcr.io/ppml/ppml:v0.4.0,rewrite-timestamp=true .
#
# Reproducible: the base images are pinned by digest (set the *_IMAGE
# arguments to name@sha256:… digests you have checked; tags move), the
# toolchain by go.mod, the dependencies by go.sum, and the binary is built
# with the flags of `make build` (docs/reproducible-builds.md).

ARG GO_IMAGE=golang:1.26.8-bookworm
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
ARG VERSION
ARG COMMIT
RUN test -n "$VERSION" && test -n "$COMMIT" || { echo "give --build-arg VERSION=… and COMMIT=… (git describe, git rev-parse HEAD): the binary states what it was built from" >&2; exit 1; }
ENV GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/root/go/pkg/mod \
    go build -trimpath -buildvcs=false \
      -ldflags "-buildid= -X github.com/ppml/ppml/internal/buildinfo.Version=${VERSION} -X github.com/ppml/ppml/internal/buildinfo.Commit=${COMMIT}" \
      -o /out/ppml ./cmd/ppml

FROM ${BASE_IMAGE}
COPY --from=build --chown=0:0 --chmod=0555 /out/ppml /usr/local/bin/ppml
# The key service keeps its state under /var/lib/ppml (the chart mounts a
# volume there); everything else is read-only.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ppml"]
CMD ["--help"]
