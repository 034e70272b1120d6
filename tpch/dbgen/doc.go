// Package dbgen is a Go port of TPC-H dbgen as DuckDB's tpch extension runs it
// (CALL dbgen(sf=N)): for any scale factor it produces the same rows, value for
// value, as DuckDB, so the published DuckDB answer sets hold for its data.
//
// The port keeps dbgen's design: every column draws from its own Park–Miller
// stream (seeds from dbgen's Seed[] table), each row consumes a fixed number of
// values per stream, and row n is reached by jumping ahead (NthElement). That
// makes any range of rows independent of the others, so tables are generated in
// parallel chunks that concatenate to exactly the one-pass output. Comments are
// slices of a text pool generated from the grammar in dists.dss.
//
// DuckDB's dbgen up to DuckDB 1.4 (the version that produced the published
// answers) differs from TPC's in two points: the text pool is 10 MiB, not
// 300 MiB, and random address characters use a 2^31 range where TPC's code
// overflows a 32-bit integer. New follows DuckDB (variant DuckDB); NewVariant
// with TPC reproduces TPC's dbgen, which later DuckDB versions match. Keys,
// numbers, dates and categories are the same in both; comments and addresses
// differ.
//
// Generator.Scan streams rows in columnar batches; package tpch/tpchparquet
// writes them as Parquet with DuckDB's column types.
package dbgen
