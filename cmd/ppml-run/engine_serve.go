//go:build !ppml_no_serve

package main

// The serve engine: KServe v2 REST and gRPC, Cluster Serving's HTTP frontend and Redis
// queue, behind attested TLS (XGBoost through cgo; dl models on libtorch unless
// ppml_no_dl leaves deep learning out).
import _ "github.com/ppml/ppml/engine/serve"
