// Package stream is ppml's streaming engine: Flink's semantics — keyed
// event-time windows, watermarks, checkpoints, exactly-once output — done
// the Kafka Streams way, as a library in each worker over a durable log
// (Kafka, NATS JetStream or Redis Streams, see the Log interface), with
// every record, shuffle message and state snapshot encrypted
// (package stream/record).
//
// A pipeline is Beam-shaped: Read, ParDo, KeyBy, WindowInto, GroupByKey
// with aggregations, Write. Compile turns it into a Plan of two stages
// split at the GroupByKey:
//
//   - source tasks, one per source partition: open and check records,
//     decode events, apply the stateless steps, assign windows and
//     pre-aggregate per key and window (Beam's combiner lifting), then
//     send partial aggregates with their watermark through the shuffle
//     stream, hash-partitioned by key;
//   - window tasks, one per shuffle partition: merge partials, track the
//     minimum watermark of all source tasks, fire windows when it passes
//     their end, handle allowed lateness and late records, and write
//     results to the sink.
//
// A worker runs whichever tasks the log assigns it (Kafka consumer groups,
// leases for JetStream and Redis). Every checkpoint commits, per task and
// atomically as far as the log allows, the task's outputs, its encrypted
// state snapshot and its input position; a restarted or rebalanced task
// resumes from its last snapshot and produces, deterministically, the same
// outputs with the same ids, so logs without transactions de-duplicate
// them. docs/stream.md maps each Flink concept to this package.
package stream
