// Package inferencepb holds the Go code protoc generates from
// open_inference.proto, the Open Inference Protocol (KServe v2) gRPC API.
// Regenerate with `go generate ./serve/kserve/inferencepb` (needs protoc;
// the plugins are the module's pinned tools).
package inferencepb

//go:generate sh gen.sh
