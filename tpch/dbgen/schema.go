package dbgen

import (
	"fmt"
	"strings"
)

// Table names one of the eight TPC-H tables.
type Table int

// The tables, in the order DuckDB's dbgen creates them.
const (
	Region Table = iota
	Nation
	Supplier
	Customer
	Part
	PartSupp
	Orders
	Lineitem
	numTables
)

// Tables lists all eight tables.
var Tables = []Table{Region, Nation, Supplier, Customer, Part, PartSupp, Orders, Lineitem}

var tableNames = [numTables]string{"region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"}

func (t Table) String() string {
	if t < 0 || t >= numTables {
		return fmt.Sprintf("Table(%d)", int(t))
	}
	return tableNames[t]
}

// ParseTable maps a table name (case-insensitive) to a Table.
func ParseTable(name string) (Table, error) {
	for i, n := range tableNames {
		if strings.EqualFold(name, n) {
			return Table(i), nil
		}
	}
	return 0, fmt.Errorf("unknown TPC-H table %q (want one of %s)", name, strings.Join(tableNames[:], ", "))
}

// Type is a column type of DuckDB's TPC-H schema.
type Type int

const (
	Integer Type = iota // INTEGER (int32)
	BigInt              // BIGINT (int64)
	Decimal             // DECIMAL(15,2), held as an int64 count of hundredths
	Date                // DATE, held as days since 1970-01-01
	Varchar             // VARCHAR
)

// SQL returns the DuckDB type name.
func (t Type) SQL() string {
	switch t {
	case Integer:
		return "INTEGER"
	case BigInt:
		return "BIGINT"
	case Decimal:
		return "DECIMAL(15,2)"
	case Date:
		return "DATE"
	default:
		return "VARCHAR"
	}
}

// Column is one column of a table.
type Column struct {
	Name string
	Type Type
}

// Columns returns the columns of t with the types DuckDB's dbgen declares
// (extension/tpch/dbgen/dbgen.cpp): keys BIGINT except nation and region keys,
// money, quantity, discount and tax DECIMAL(15,2), all columns NOT NULL.
func (t Table) Columns() []Column { return schema[t] }

var schema = [numTables][]Column{
	Region: {{"r_regionkey", Integer}, {"r_name", Varchar}, {"r_comment", Varchar}},
	Nation: {{"n_nationkey", Integer}, {"n_name", Varchar}, {"n_regionkey", Integer}, {"n_comment", Varchar}},
	Supplier: {{"s_suppkey", BigInt}, {"s_name", Varchar}, {"s_address", Varchar}, {"s_nationkey", Integer},
		{"s_phone", Varchar}, {"s_acctbal", Decimal}, {"s_comment", Varchar}},
	Customer: {{"c_custkey", BigInt}, {"c_name", Varchar}, {"c_address", Varchar}, {"c_nationkey", Integer},
		{"c_phone", Varchar}, {"c_acctbal", Decimal}, {"c_mktsegment", Varchar}, {"c_comment", Varchar}},
	Part: {{"p_partkey", BigInt}, {"p_name", Varchar}, {"p_mfgr", Varchar}, {"p_brand", Varchar}, {"p_type", Varchar},
		{"p_size", Integer}, {"p_container", Varchar}, {"p_retailprice", Decimal}, {"p_comment", Varchar}},
	PartSupp: {{"ps_partkey", BigInt}, {"ps_suppkey", BigInt}, {"ps_availqty", BigInt}, {"ps_supplycost", Decimal},
		{"ps_comment", Varchar}},
	Orders: {{"o_orderkey", BigInt}, {"o_custkey", BigInt}, {"o_orderstatus", Varchar}, {"o_totalprice", Decimal},
		{"o_orderdate", Date}, {"o_orderpriority", Varchar}, {"o_clerk", Varchar}, {"o_shippriority", Integer},
		{"o_comment", Varchar}},
	Lineitem: {{"l_orderkey", BigInt}, {"l_partkey", BigInt}, {"l_suppkey", BigInt}, {"l_linenumber", BigInt},
		{"l_quantity", Decimal}, {"l_extendedprice", Decimal}, {"l_discount", Decimal}, {"l_tax", Decimal},
		{"l_returnflag", Varchar}, {"l_linestatus", Varchar}, {"l_shipdate", Date}, {"l_commitdate", Date},
		{"l_receiptdate", Date}, {"l_shipinstruct", Varchar}, {"l_shipmode", Varchar}, {"l_comment", Varchar}},
}

// TypicalRowSize is the typical size of one of t's rows in bytes, from the
// TPC-H specification's estimated database size (clause 4.2.5, Table 3):
// the relative cost of generating and writing a row, for an estimate of
// the time a generation has left.
func (t Table) TypicalRowSize() int {
	if t < 0 || t >= numTables {
		return 0
	}
	return typicalRowSize[t]
}

var typicalRowSize = [numTables]int{Region: 124, Nation: 128, Supplier: 159, Customer: 179,
	Part: 155, PartSupp: 144, Orders: 104, Lineitem: 112}

// Driver is the table whose rows drive generation of t: a part row yields its four
// partsupp rows and an order row its lineitem rows, so those pairs are generated
// together and split into chunks by driver rows.
func (t Table) Driver() Table {
	switch t {
	case PartSupp:
		return Part
	case Lineitem:
		return Orders
	}
	return t
}
