// Package sqlengine is ppml's SQL engine: an embedded DuckDB, locked down so
// that a job's SQL can read its decrypted inputs (memfds) and nothing else,
// never spills to disk, and stays under the job's memory limit.
//
// Inputs become tables (views over /proc/self/fd/N paths); a Plan names the
// statements whose last result becomes each output, encoded by DuckDB's own
// CSV, JSON-lines or Parquet writer into a memfd and copied to the caller's
// writer only once every statement has succeeded. See docs/sql.md.
//
// The package registers the sql engine with the trusted launcher (job.go):
// a binary that imports it can run sql jobs. The manifest parameters are
// read by package sqlspec, which the key service uses without DuckDB.
package sqldb
