// Package tpch holds the TPC-H benchmark as DuckDB runs it: the schema, the 22
// queries with the validation parameters, and a checker of query results
// against DuckDB's published answer files. The data generator is tpch/dbgen.
package tpch

import (
	"embed"
	"fmt"
	"strings"

	"github.com/ppml/ppml/tpch/dbgen"
)

// queryFS holds DuckDB's texts of the 22 queries; see queries/README.md.
//
//go:embed queries/*.sql
var queryFS embed.FS

// NumQueries is the number of TPC-H queries.
const NumQueries = 22

// Query returns the text of query n (1..22), ending with ";\n".
func Query(n int) (string, error) {
	if n < 1 || n > NumQueries {
		return "", fmt.Errorf("tpch: query %d out of range 1..%d", n, NumQueries)
	}
	b, err := queryFS.ReadFile(fmt.Sprintf("queries/q%02d.sql", n))
	if err != nil {
		return "", fmt.Errorf("tpch: query %d: %w", n, err)
	}
	return string(b), nil
}

// DDL returns CREATE TABLE statements for the eight tables with DuckDB's TPC-H
// column types, in the order region, nation, supplier, customer, part,
// partsupp, orders, lineitem.
func DDL() string {
	var b strings.Builder
	for _, t := range dbgen.Tables {
		b.WriteString(CreateTable(t))
	}
	return b.String()
}

// CreateTable returns the CREATE TABLE statement of one table.
func CreateTable(t dbgen.Table) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE %s (\n", t)
	cols := t.Columns()
	for i, c := range cols {
		fmt.Fprintf(&b, "    %s %s NOT NULL", c.Name, c.Type.SQL())
		if i < len(cols)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString(");\n")
	return b.String()
}
