package parquetcrypt

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// A deterministic table: id, name (null every 7th row), score, tags (a list
// of 0..3 ints).
var rtSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "score", Type: arrow.PrimitiveTypes.Float64},
	{Name: "tags", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true},
}, nil)

func rtName(i int) (string, bool) { return fmt.Sprintf("name-%d", i), i%7 != 0 }
func rtScore(i int) float64       { return float64(i) / 3 }
func rtTags(i int) []int32 {
	out := []int32{}
	for k := 0; k < i%4; k++ {
		out = append(out, int32(i+k))
	}
	return out
}

func rtRecord(from, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, rtSchema)
	defer b.Release()
	for i := from; i < from+n; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		if s, ok := rtName(i); ok {
			b.Field(1).(*array.StringBuilder).Append(s)
		} else {
			b.Field(1).AppendNull()
		}
		b.Field(2).(*array.Float64Builder).Append(rtScore(i))
		lb := b.Field(3).(*array.ListBuilder)
		lb.Append(true)
		for _, v := range rtTags(i) {
			lb.ValueBuilder().(*array.Int32Builder).Append(v)
		}
	}
	return b.NewRecordBatch()
}

const rtRows = 5000

// writeRT writes the table in row groups of 1000 rows, snappy-compressed.
func writeRT(t testing.TB, cfg EncryptConfig, extra ...parquet.WriterProperty) []byte {
	t.Helper()
	var buf bytes.Buffer
	props := append([]parquet.WriterProperty{parquet.WithCompression(compress.Codecs.Snappy), parquet.WithMaxRowGroupLength(1000), parquet.WithDictionaryDefault(true)}, extra...)
	w, err := NewWriter(&buf, rtSchema, cfg, props...)
	if err != nil {
		t.Fatal(err)
	}
	for from := 0; from < rtRows; from += 1000 {
		rec := rtRecord(from, 1000)
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkRTRecords checks every value of every row read through rr.
func checkRTRecords(t testing.TB, rr array.RecordReader) {
	t.Helper()
	row := 0
	for rr.Next() {
		rec := rr.RecordBatch()
		ids := rec.Column(0).(*array.Int64)
		names := rec.Column(1).(*array.String)
		scores := rec.Column(2).(*array.Float64)
		tags := rec.Column(3).(*array.List)
		tagVals := tags.ListValues().(*array.Int32)
		for k := 0; k < int(rec.NumRows()); k++ {
			i := row + k
			if ids.Value(k) != int64(i) {
				t.Fatalf("row %d: id %d", i, ids.Value(k))
			}
			if s, ok := rtName(i); ok != names.IsValid(k) || (ok && names.Value(k) != s) {
				t.Fatalf("row %d: name %q valid=%v", i, names.Value(k), names.IsValid(k))
			}
			if scores.Value(k) != rtScore(i) {
				t.Fatalf("row %d: score %v", i, scores.Value(k))
			}
			start, end := tags.ValueOffsets(k)
			want := rtTags(i)
			if int(end-start) != len(want) {
				t.Fatalf("row %d: %d tags, want %d", i, end-start, len(want))
			}
			for x := range want {
				if tagVals.Value(int(start)+x) != want[x] {
					t.Fatalf("row %d: tag %d = %d", i, x, tagVals.Value(int(start)+x))
				}
			}
		}
		row += int(rec.NumRows())
	}
	if err := rr.Err(); err != nil {
		t.Fatal(err)
	}
	if row != rtRows {
		t.Fatalf("read %d rows, want %d", row, rtRows)
	}
}

var (
	rtFooterKey = []byte("footer-key-16byt")
	rtColKey1   = []byte("column-key-one-24-bytes!")
	rtColKey2   = []byte("column-key-number-two-is-32bytes")
)

type rtCase struct {
	name string
	cfg  EncryptConfig
	keys KeyRetriever
	opts []Option // reader options
	// props are extra writer properties.
	props []parquet.WriterProperty
	// duckdb says whether DuckDB 1.4 is expected to read the file.
	duckdb bool
}

func rtCases(t testing.TB) []rtCase {
	ids := &StaticKeys{ByID: map[string][]byte{"kf": rtFooterKey, "kc1": rtColKey1, "kc2": rtColKey2}}
	perColumn := map[string]ColumnKey{
		"name":              {Key: rtColKey1, KeyMetadata: []byte("kc1")},
		"tags.list.element": {Key: rtColKey2, KeyMetadata: []byte("kc2")},
		// id and score stay in plaintext.
	}
	kms := &LocalKMS{MasterKeys: map[string][]byte{"mk-footer": []byte("master-key-16byt"), "mk-col": []byte("master-key-for-columns-32-bytes!")}}
	fmd, err := NewKeyMetadata(kms, "mk-footer", rtFooterKey, true)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := NewKeyMetadata(kms, "mk-col", rtColKey1, false)
	if err != nil {
		t.Fatal(err)
	}
	return []rtCase{
		{name: "uniform_gcm", cfg: EncryptConfig{FooterKey: rtFooterKey, FooterKeyMetadata: []byte("kf")}, keys: ids, duckdb: true},
		{name: "uniform_gcm_no_key_metadata", cfg: EncryptConfig{FooterKey: rtFooterKey}, keys: &StaticKeys{Footer: rtFooterKey}, duckdb: true},
		{name: "uniform_ctr", cfg: EncryptConfig{Algorithm: AESGCMCTR, FooterKey: rtFooterKey, FooterKeyMetadata: []byte("kf")}, keys: ids},
		{name: "columns_gcm", cfg: EncryptConfig{FooterKey: rtFooterKey, FooterKeyMetadata: []byte("kf"), ColumnKeys: perColumn}, keys: ids},
		{name: "columns_ctr", cfg: EncryptConfig{Algorithm: AESGCMCTR, FooterKey: rtFooterKey, FooterKeyMetadata: []byte("kf"), ColumnKeys: perColumn}, keys: ids},
		{name: "columns_gcm_plaintext_footer", cfg: EncryptConfig{FooterKey: rtFooterKey, FooterKeyMetadata: []byte("kf"), ColumnKeys: perColumn, PlaintextFooter: true}, keys: ids},
		{name: "columns_by_path", cfg: EncryptConfig{FooterKey: rtFooterKey, ColumnKeys: map[string]ColumnKey{"name": {Key: rtColKey1}}},
			keys: &StaticKeys{Footer: rtFooterKey, ByColumn: map[string][]byte{"name": rtColKey1}}},
		{name: "columns_gcm_data_page_v2_zstd", cfg: EncryptConfig{FooterKey: rtFooterKey, FooterKeyMetadata: []byte("kf"), ColumnKeys: perColumn}, keys: ids,
			props: []parquet.WriterProperty{parquet.WithDataPageVersion(parquet.DataPageV2), parquet.WithCompression(compress.Codecs.Zstd)}},
		{name: "uniform_ctr_data_page_v2_uncompressed", cfg: EncryptConfig{Algorithm: AESGCMCTR, FooterKey: rtFooterKey}, keys: &StaticKeys{Footer: rtFooterKey},
			props: []parquet.WriterProperty{parquet.WithDataPageVersion(parquet.DataPageV2), parquet.WithCompression(compress.Codecs.Uncompressed)}},
		{name: "aad_prefix_stored", cfg: EncryptConfig{FooterKey: rtFooterKey, FooterKeyMetadata: []byte("kf"), AADPrefix: []byte("table:people")}, keys: ids},
		{name: "aad_prefix_supplied", cfg: EncryptConfig{FooterKey: rtFooterKey, FooterKeyMetadata: []byte("kf"), AADPrefix: []byte("table:people"), DontStoreAADPrefix: true},
			keys: ids, opts: []Option{WithAADPrefix([]byte("table:people"))}},
		{name: "key_tools_metadata", cfg: EncryptConfig{FooterKey: rtFooterKey, FooterKeyMetadata: fmd, ColumnKeys: map[string]ColumnKey{"name": {Key: rtColKey1, KeyMetadata: cmd}}},
			keys: &KeyToolsRetriever{KMS: kms}},
	}
}

// TestRoundTrip writes every configuration with arrow-go's encryption and
// reads it back through this package (Arrow records and the plaintext
// stream) and through arrow-go's own decrypting reader.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, tc := range rtCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			enc := writeRT(t, tc.cfg, tc.props...)
			f, err := Open(ctx, bytes.NewReader(enc), tc.keys, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if f.Algorithm() != tc.cfg.Algorithm || f.NumRowGroups() != 5 {
				t.Fatalf("algorithm %v, %d row groups", f.Algorithm(), f.NumRowGroups())
			}
			rr, err := f.NewRecordReader(ctx, RecordOptions{BatchSize: 700})
			if err != nil {
				t.Fatal(err)
			}
			checkRTRecords(t, rr)
			rr.Release()

			var plain bytes.Buffer
			if _, err := f.DecryptTo(ctx, &plain); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(plain.Bytes(), []byte("PARE")) || !bytes.HasPrefix(plain.Bytes(), []byte("PAR1")) {
				t.Fatal("output is not a plaintext parquet file")
			}
			checkRTRecords(t, arrowReader(t, plain.Bytes(), nil))

			// arrow-go's own decryption of the same file.
			checkRTRecords(t, arrowReader(t, enc, arrowDecryptProps(tc)))
		})
	}
}

func arrowDecryptProps(tc rtCase) *parquet.FileDecryptionProperties {
	opts := []parquet.FileDecryptionOption{parquet.WithKeyRetriever(arrowRetriever{tc.keys})}
	if len(tc.cfg.AADPrefix) > 0 && tc.cfg.DontStoreAADPrefix {
		opts = append(opts, parquet.WithDecryptAadPrefix(string(tc.cfg.AADPrefix)))
	}
	if len(tc.cfg.FooterKeyMetadata) == 0 {
		opts = append(opts, parquet.WithFooterKey(string(rtFooterKey)))
	}
	if _, ok := tc.keys.(*StaticKeys); ok && tc.cfg.ColumnKeys != nil && tc.cfg.ColumnKeys["name"].KeyMetadata == nil {
		opts = append(opts, parquet.WithColumnKeys(parquet.ColumnPathToDecryptionPropsMap{
			"name": parquet.NewColumnDecryptionProperties("name", parquet.WithDecryptKey(string(rtColKey1))),
		}))
	}
	return parquet.NewFileDecryptionProperties(opts...)
}

// arrowRetriever adapts a KeyRetriever to arrow-go's (which cannot fail).
type arrowRetriever struct{ k KeyRetriever }

func (a arrowRetriever) GetKey(md []byte) string {
	// Column requests carry no path in arrow-go's interface; key ids and key
	// tools metadata identify keys without it.
	req := KeyRequest{KeyMetadata: md}
	if m, err := ParseKeyMetadata(md); err == nil && m.Internal && !m.Material.IsFooterKey {
		req.Column = "?"
	}
	k, err := a.k.Key(context.Background(), req)
	if err != nil {
		return ""
	}
	return string(k)
}

func arrowReader(t testing.TB, b []byte, dec *parquet.FileDecryptionProperties) array.RecordReader {
	t.Helper()
	props := parquet.NewReaderProperties(nil)
	props.FileDecryptProps = dec
	pf, err := file.NewParquetReader(bytes.NewReader(b), file.WithReadProps(props))
	if err != nil {
		t.Fatal(err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1000}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rr.Release)
	return rr
}

func TestWriterRefuses(t *testing.T) {
	for name, cfg := range map[string]EncryptConfig{
		"ctr with plaintext footer": {Algorithm: AESGCMCTR, FooterKey: rtFooterKey, PlaintextFooter: true},
		"short footer key":          {FooterKey: []byte("short")},
		"short column key":          {FooterKey: rtFooterKey, ColumnKeys: map[string]ColumnKey{"name": {Key: []byte("x")}}},
		"unknown column":            {FooterKey: rtFooterKey, ColumnKeys: map[string]ColumnKey{"nope": {Key: rtColKey1}}},
		"unstored empty prefix":     {FooterKey: rtFooterKey, DontStoreAADPrefix: true},
	} {
		if _, err := NewWriter(&bytes.Buffer{}, rtSchema, cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
