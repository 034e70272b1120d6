// Package e2e holds the end-to-end check of the TPC-H pieces against DuckDB:
// generate each scale factor with tpch/dbgen, write it with tpch/tpchparquet,
// run the 22 queries of package tpch in DuckDB over the Parquet files, and
// compare every result with DuckDB's published answers. It has tests only; it
// lives apart so that packages tpch and tpch/dbgen build (and fuzz) without
// linking DuckDB.
package e2e
