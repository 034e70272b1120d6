//go:build !ppml_no_stream

package main

// The stream engine: keyed event-time windows over encrypted records, in
// bounded mode or as a long-running worker on Kafka, NATS JetStream or
// Redis Streams (pure Go).
import _ "github.com/ppml/ppml/engine/stream"
