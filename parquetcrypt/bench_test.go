package parquetcrypt

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Benchmarks compare decryption with reading the same data in plaintext.
// All report MB/s over the plaintext file size, so their ratio is the cost
// of decryption:
//
//	go test -run '^$' -bench . -benchtime 20x ./parquetcrypt

const benchRows = 500_000

var benchData struct {
	once             sync.Once
	plain, gcm, ctr  []byte
	gcmKeys, ctrKeys KeyRetriever
}

func benchFiles(b *testing.B) {
	benchData.once.Do(func() {
		benchData.plain = writeBench(b, nil)
		benchData.gcm = writeBench(b, &EncryptConfig{FooterKey: rtFooterKey})
		benchData.ctr = writeBench(b, &EncryptConfig{Algorithm: AESGCMCTR, FooterKey: rtFooterKey})
		benchData.gcmKeys = &StaticKeys{Footer: rtFooterKey}
		benchData.ctrKeys = &StaticKeys{Footer: rtFooterKey}
	})
}

// writeBench writes benchRows rows of the round-trip table, encrypted with
// cfg or in plaintext when cfg is nil, with the same writer settings.
func writeBench(b *testing.B, cfg *EncryptConfig) []byte {
	var buf bytes.Buffer
	props := []parquet.WriterProperty{parquet.WithCompression(compress.Codecs.Snappy), parquet.WithMaxRowGroupLength(100_000)}
	var w *pqarrow.FileWriter
	var err error
	if cfg == nil {
		w, err = pqarrow.NewFileWriter(rtSchema, &buf, parquet.NewWriterProperties(props...), pqarrow.DefaultWriterProps())
	} else {
		w, err = NewWriter(&buf, rtSchema, *cfg, props...)
	}
	if err != nil {
		b.Fatal(err)
	}
	for from := 0; from < benchRows; from += 50_000 {
		rec := rtRecord(from, 50_000)
		if err := w.Write(rec); err != nil {
			b.Fatal(err)
		}
		rec.Release()
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

func drain(b *testing.B, rr interface {
	Next() bool
	Err() error
	Release()
}) {
	for rr.Next() {
	}
	if err := rr.Err(); err != nil {
		b.Fatal(err)
	}
	rr.Release()
}

// BenchmarkPlaintext is the baseline: the unencrypted file copied into a
// buffer (what handing DuckDB an already plaintext file costs at best), and
// decoded to Arrow by arrow-go.
func BenchmarkPlaintext(b *testing.B) {
	benchFiles(b)
	b.Run("copy", func(b *testing.B) {
		b.SetBytes(int64(len(benchData.plain)))
		out := bytes.NewBuffer(make([]byte, 0, 2*len(benchData.plain)))
		for i := 0; i < b.N; i++ {
			out.Reset()
			if _, err := out.ReadFrom(bytes.NewReader(benchData.plain)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("arrow", func(b *testing.B) {
		b.SetBytes(int64(len(benchData.plain)))
		for i := 0; i < b.N; i++ {
			drain(b, arrowReader(b, benchData.plain, nil))
		}
	})
}

// BenchmarkDecrypt: the encrypted file to a plaintext Parquet stream
// (what the SQL engine hands DuckDB), and to Arrow records, here and with
// arrow-go's own decrypting reader.
func BenchmarkDecrypt(b *testing.B) {
	benchFiles(b)
	for _, c := range []struct {
		name string
		file []byte
		keys KeyRetriever
	}{{"gcm", benchData.gcm, benchData.gcmKeys}, {"ctr", benchData.ctr, benchData.ctrKeys}} {
		b.Run(c.name+"/stream", func(b *testing.B) {
			b.SetBytes(int64(len(benchData.plain)))
			out := bytes.NewBuffer(make([]byte, 0, 2*len(benchData.plain)))
			for i := 0; i < b.N; i++ {
				out.Reset()
				if _, err := DecryptTo(context.Background(), out, bytes.NewReader(c.file), c.keys); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/arrow", func(b *testing.B) {
			b.SetBytes(int64(len(benchData.plain)))
			for i := 0; i < b.N; i++ {
				f, err := Open(context.Background(), bytes.NewReader(c.file), c.keys)
				if err != nil {
					b.Fatal(err)
				}
				rr, err := f.NewRecordReader(context.Background(), RecordOptions{})
				if err != nil {
					b.Fatal(err)
				}
				drain(b, rr)
			}
		})
		b.Run(c.name+"/arrowgo-native", func(b *testing.B) {
			b.SetBytes(int64(len(benchData.plain)))
			for i := 0; i < b.N; i++ {
				dec := parquet.NewFileDecryptionProperties(parquet.WithFooterKey(string(rtFooterKey)))
				drain(b, arrowReader(b, c.file, dec))
			}
		})
	}
}
