package parquetcrypt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/ppml/ppml/internal/shareddata"
)

// The shared interop files and their keys (see the README next to them).

func suiteDir(t testing.TB) string {
	return shareddata.Require(t, "parquet-encryption")
}

// suiteKeys returns the keys of the top folder (AES-128) or aes256/, by key id.
func suiteKeys(aes256 bool) map[string][]byte {
	if !aes256 {
		return map[string][]byte{
			"kf":  []byte("0123456789012345"),
			"kc1": []byte("1234567890123450"),
			"kc2": []byte("1234567890123451"),
		}
	}
	k := map[string][]byte{"kf": []byte("01234567890123456789012345678901")}
	for i := 1; i <= 8; i++ {
		// kc1 ends in 12, kc2 in 13, ... kc8 in 19.
		k[fmt.Sprintf("kc%d", i)] = []byte(fmt.Sprintf("123456789012345678901234567890%d", 11+i))
	}
	return k
}

// suiteValue is the value Parquet C++'s test FileEncryptor
// (cpp/src/parquet/encryption/test_encryption_util.cc) writes in row i of
// every row group; null for a nil result.
func suiteValue(column string, i int) []any {
	switch column {
	case "boolean_field":
		return []any{i%2 == 0}
	case "int32_field":
		return []any{int32(i)}
	case "int64_field", "int64_field.list.element":
		// Two values per row: j * 10^12 for j = 2i, 2i+1.
		return []any{int64(2*i) * 1_000_000_000_000, int64(2*i+1) * 1_000_000_000_000}
	case "int96_field":
		var v parquet.Int96
		binary.LittleEndian.PutUint32(v[0:], uint32(i))
		binary.LittleEndian.PutUint32(v[4:], uint32(i+1))
		binary.LittleEndian.PutUint32(v[8:], uint32(i+2))
		return []any{v}
	case "float_field":
		return []any{float32(i) * float32(1.1)}
	case "double_field":
		return []any{float64(i) * 1.1111111}
	case "ba_field":
		if i%2 == 1 {
			return []any{nil}
		}
		return []any{parquet.ByteArray(fmt.Sprintf("parquet%d%d%d", i/100, (i/10)%10, i%10))}
	case "flba_field":
		return []any{parquet.FixedLenByteArray(bytes.Repeat([]byte{byte(i)}, 10))}
	}
	panic("no generator for column " + column)
}

// bloomValue is the content of the parquet-java bloom filter file:
// row i holds i+0.5, i+0.25, i and "name_i".
func bloomValue(column string, i int) []any {
	switch column {
	case "double_field":
		return []any{float64(i) + 0.5}
	case "float_field":
		return []any{float32(i) + 0.25}
	case "int32_field":
		return []any{int32(i)}
	case "name":
		return []any{parquet.ByteArray(fmt.Sprintf("name_%d", i))}
	}
	panic("no generator for column " + column)
}

// externalValue is the content of parquet-java's external key material
// file: i, and a letter a..j cycling with i followed by i ("a0", "b1", … "a10").
func externalValue(column string, i int) []any {
	switch column {
	case "integers":
		return []any{int32(i)}
	case "strings":
		return []any{parquet.ByteArray(fmt.Sprintf("%c%d", 'a'+i%10, i))}
	}
	panic("no generator for column " + column)
}

type suiteFile struct {
	name     string // relative to the suite directory
	aes256   bool
	prefix   string // AAD prefix the reader must supply
	external bool   // keys in the key material sidecar
	rows     int    // total rows
	values   func(column string, i int) []any
	writer   string
}

var suiteFiles = []suiteFile{
	{name: "uniform_encryption.parquet.encrypted", rows: 50, values: suiteValue, writer: "Parquet C++"},
	{name: "encrypt_columns_and_footer.parquet.encrypted", rows: 50, values: suiteValue, writer: "Parquet C++"},
	{name: "encrypt_columns_and_footer_aad.parquet.encrypted", rows: 50, values: suiteValue, writer: "Parquet C++"},
	{name: "encrypt_columns_and_footer_ctr.parquet.encrypted", rows: 50, values: suiteValue, writer: "Parquet C++"},
	{name: "encrypt_columns_and_footer_disable_aad_storage.parquet.encrypted", prefix: "tester", rows: 50, values: suiteValue, writer: "Parquet C++"},
	{name: "encrypt_columns_plaintext_footer.parquet.encrypted", rows: 50, values: suiteValue, writer: "Parquet C++"},
	{name: "encrypt_columns_and_footer_bloom_filter.parquet.encrypted", rows: 2000, values: bloomValue, writer: "parquet-java"},
	{name: "external_key_material_java.parquet.encrypted", external: true, rows: 100, values: externalValue, writer: "parquet-java"},
	{name: "aes256/uniform_encryption.parquet.encrypted", aes256: true, rows: 50, values: suiteValue, writer: "parquet-java"},
	{name: "aes256/encrypt_columns_and_footer.parquet.encrypted", aes256: true, rows: 50, values: suiteValue, writer: "parquet-java"},
	{name: "aes256/encrypt_columns_and_footer_ctr.parquet.encrypted", aes256: true, rows: 50, values: suiteValue, writer: "parquet-java"},
	{name: "aes256/encrypt_columns_and_footer_disable_aad_storage.parquet.encrypted", aes256: true, prefix: "tester", rows: 50, values: suiteValue, writer: "parquet-java"},
	{name: "aes256/encrypt_columns_plaintext_footer.parquet.encrypted", aes256: true, rows: 50, values: suiteValue, writer: "parquet-java"},
}

func (sf suiteFile) path(t testing.TB) string { return filepath.Join(suiteDir(t), sf.name) }

func (sf suiteFile) retriever(t testing.TB) KeyRetriever {
	keys := suiteKeys(sf.aes256)
	if !sf.external {
		return &StaticKeys{ByID: keys}
	}
	b, err := os.ReadFile(KeyMaterialSidecar(sf.path(t)))
	if err != nil {
		t.Fatal(err)
	}
	store, err := ParseKeyMaterialStore(b)
	if err != nil {
		t.Fatal(err)
	}
	// The master keys of parquet-java's in-memory test KMS are the suite's keys.
	return &KeyToolsRetriever{KMS: &LocalKMS{MasterKeys: keys}, Store: store}
}

func (sf suiteFile) options() []Option {
	if sf.prefix == "" {
		return nil
	}
	return []Option{WithAADPrefix([]byte(sf.prefix))}
}

func (sf suiteFile) open(t testing.TB) *os.File {
	fh, err := os.Open(sf.path(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fh.Close() })
	return fh
}

// leafValues reads one column chunk with arrow-go's low-level typed reader:
// values (nil for nulls), definition and repetition levels.
func leafValues(t testing.TB, rg *file.RowGroupReader, col int, maxDef int16) (vals []any, def, rep []int16) {
	t.Helper()
	cr, err := rg.Column(col)
	if err != nil {
		t.Fatal(err)
	}
	md, err := rg.MetaData().ColumnChunk(col)
	if err != nil {
		t.Fatal(err)
	}
	total := md.NumValues()
	def = make([]int16, total)
	rep = make([]int16, total)
	var got int64
	var read int
	var raw []any
	switch r := cr.(type) {
	case *file.BooleanColumnChunkReader:
		v := make([]bool, total)
		got, read, err = r.ReadBatch(total, v, def, rep)
		for _, x := range v[:read] {
			raw = append(raw, x)
		}
	case *file.Int32ColumnChunkReader:
		v := make([]int32, total)
		got, read, err = r.ReadBatch(total, v, def, rep)
		for _, x := range v[:read] {
			raw = append(raw, x)
		}
	case *file.Int64ColumnChunkReader:
		v := make([]int64, total)
		got, read, err = r.ReadBatch(total, v, def, rep)
		for _, x := range v[:read] {
			raw = append(raw, x)
		}
	case *file.Int96ColumnChunkReader:
		v := make([]parquet.Int96, total)
		got, read, err = r.ReadBatch(total, v, def, rep)
		for _, x := range v[:read] {
			raw = append(raw, x)
		}
	case *file.Float32ColumnChunkReader:
		v := make([]float32, total)
		got, read, err = r.ReadBatch(total, v, def, rep)
		for _, x := range v[:read] {
			raw = append(raw, x)
		}
	case *file.Float64ColumnChunkReader:
		v := make([]float64, total)
		got, read, err = r.ReadBatch(total, v, def, rep)
		for _, x := range v[:read] {
			raw = append(raw, x)
		}
	case *file.ByteArrayColumnChunkReader:
		v := make([]parquet.ByteArray, total)
		got, read, err = r.ReadBatch(total, v, def, rep)
		for _, x := range v[:read] {
			raw = append(raw, parquet.ByteArray(append([]byte(nil), x...)))
		}
	case *file.FixedLenByteArrayColumnChunkReader:
		v := make([]parquet.FixedLenByteArray, total)
		got, read, err = r.ReadBatch(total, v, def, rep)
		for _, x := range v[:read] {
			raw = append(raw, parquet.FixedLenByteArray(append([]byte(nil), x...)))
		}
	default:
		t.Fatalf("column %d: unexpected reader %T", col, cr)
	}
	if err != nil {
		t.Fatalf("column %d: %v", col, err)
	}
	if got != total {
		t.Fatalf("column %d: read %d of %d levels", col, got, total)
	}
	// Spread values over levels: a level below maxDef is a null (or empty list).
	j := 0
	for _, d := range def {
		if d == maxDef {
			vals = append(vals, raw[j])
			j++
		} else {
			vals = append(vals, nil)
		}
	}
	if j != read {
		t.Fatalf("column %d: %d values for %d defined levels", col, read, j)
	}
	return vals, def, rep
}

// checkPlainAgainst reads a plaintext Parquet file with arrow-go's low-level
// readers and checks every value, definition level and repetition level of
// every column against gen. It returns the number of values checked.
func checkPlainAgainst(t testing.TB, plain []byte, wantRows int, gen func(string, int) []any) int {
	t.Helper()
	r, err := file.NewParquetReader(bytes.NewReader(plain))
	if err != nil {
		t.Fatalf("open decrypted file: %v", err)
	}
	defer r.Close()
	if int(r.NumRows()) != wantRows {
		t.Fatalf("rows = %d, want %d", r.NumRows(), wantRows)
	}
	sc := r.MetaData().Schema
	checked := 0
	for g := 0; g < r.NumRowGroups(); g++ {
		rg := r.RowGroup(g)
		rows := int(rg.NumRows())
		for c := 0; c < sc.NumColumns(); c++ {
			col := sc.Column(c)
			path := col.ColumnPath().String()
			maxDef, maxRep := col.MaxDefinitionLevel(), col.MaxRepetitionLevel()
			vals, def, rep := leafValues(t, rg, c, maxDef)
			var want []any
			var wantRep []int16
			for i := 0; i < rows; i++ {
				v := gen(path, i)
				want = append(want, v...)
				for k := range v {
					if maxRep > 0 && k > 0 {
						wantRep = append(wantRep, maxRep)
					} else {
						wantRep = append(wantRep, 0)
					}
				}
			}
			if len(vals) != len(want) {
				t.Fatalf("row group %d column %s: %d values, want %d", g, path, len(vals), len(want))
			}
			for k := range want {
				if !sameValue(vals[k], want[k]) {
					t.Fatalf("row group %d column %s value %d = %v, want %v", g, path, k, vals[k], want[k])
				}
				if (want[k] == nil) != (def[k] < maxDef) {
					t.Fatalf("row group %d column %s value %d: definition level %d (max %d)", g, path, k, def[k], maxDef)
				}
				if maxRep > 0 && rep[k] != wantRep[k] {
					t.Fatalf("row group %d column %s value %d: repetition level %d, want %d", g, path, k, rep[k], wantRep[k])
				}
				checked++
			}
		}
	}
	return checked
}

func sameValue(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case float32:
		y, ok := b.(float32)
		return ok && math.Float32bits(x) == math.Float32bits(y)
	case float64:
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	case parquet.ByteArray:
		y, ok := b.(parquet.ByteArray)
		return ok && bytes.Equal(x, y)
	case parquet.FixedLenByteArray:
		y, ok := b.(parquet.FixedLenByteArray)
		return ok && bytes.Equal(x, y)
	default:
		return a == b
	}
}

// TestSuiteFilesEveryValue decrypts every shared interop file (Parquet C++
// and parquet-java writers) and checks every value against the generator.
func TestSuiteFilesEveryValue(t *testing.T) {
	// Every file in the folder must be listed: a new file is a new test case.
	listed := map[string]bool{}
	for _, sf := range suiteFiles {
		listed[sf.name] = true
	}
	for _, pat := range []string{"*.encrypted", "aes256/*.encrypted"} {
		found, _ := filepath.Glob(filepath.Join(suiteDir(t), pat))
		for _, p := range found {
			rel, _ := filepath.Rel(suiteDir(t), p)
			if !listed[rel] {
				t.Errorf("interop file %s has no test case", rel)
			}
		}
	}
	for _, sf := range suiteFiles {
		t.Run(sf.name, func(t *testing.T) {
			var out bytes.Buffer
			if _, err := DecryptTo(context.Background(), &out, sf.open(t), sf.retriever(t), sf.options()...); err != nil {
				t.Fatalf("decrypt %s file: %v", sf.writer, err)
			}
			n := checkPlainAgainst(t, out.Bytes(), sf.rows, sf.values)
			if n < sf.rows {
				t.Fatalf("only %d values checked", n)
			}
			t.Logf("%s (%s): %d values checked", sf.name, sf.writer, n)
		})
	}
}

func TestSuiteColumnsAreTheDocumentedOnes(t *testing.T) {
	// Guards the generator mapping: the suite files have the columns the
	// generators know, in the writer's order.
	sf := suiteFiles[0]
	f, err := Open(context.Background(), sf.open(t), sf.retriever(t))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(f.Columns(), ",")
	want := "boolean_field,int32_field,int64_field,int96_field,float_field,double_field,ba_field,flba_field"
	if got != want {
		t.Fatalf("columns %s, want %s", got, want)
	}
}
