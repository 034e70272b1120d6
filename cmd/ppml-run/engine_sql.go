//go:build !ppml_no_sql

package main

// The sql engine: SQL over the decrypted inputs in an embedded DuckDB
// (cgo). ppml-run sql needs it.
import _ "github.com/ppml/ppml/engine/sql"
