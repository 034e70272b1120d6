package parquetcrypt

import (
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Writing is arrow-go's own modular encryption; this file only turns an
// EncryptConfig into its properties and checks what arrow-go would accept
// silently or panic on.

// ColumnKey is the key of one column.
type ColumnKey struct {
	Key []byte
	// KeyMetadata is stored in the file so readers can find the key: a key
	// id ("kc1", a key service id) or parquet key tools metadata from
	// NewKeyMetadata.
	KeyMetadata []byte
}

// EncryptConfig says how to encrypt a Parquet file.
type EncryptConfig struct {
	Algorithm Algorithm
	// FooterKey encrypts (or signs) the footer and every column that has no
	// key of its own.
	FooterKey         []byte
	FooterKeyMetadata []byte
	// ColumnKeys maps a dotted column path to its key. When it is empty,
	// every column is encrypted with the footer key ("uniform encryption").
	// When it is not, columns missing from it are stored in plaintext, as
	// Parquet specifies.
	ColumnKeys map[string]ColumnKey
	// PlaintextFooter leaves the footer readable (signed with the footer
	// key), so readers without keys can see the schema.
	PlaintextFooter bool
	// AADPrefix binds the file to an identity (a table name, a path) that
	// readers check.
	AADPrefix []byte
	// DontStoreAADPrefix keeps the prefix out of the file: readers must
	// supply it.
	DontStoreAADPrefix bool
}

func checkKey(what string, k []byte) error {
	switch len(k) {
	case 16, 24, 32:
		return nil
	}
	return fmt.Errorf("%s key is %d bytes, want 16, 24 or 32", what, len(k))
}

// FileEncryptionProperties converts c to arrow-go's encryption properties.
// Each set of properties encrypts one file only.
func (c *EncryptConfig) FileEncryptionProperties() (*parquet.FileEncryptionProperties, error) {
	if err := checkKey("footer", c.FooterKey); err != nil {
		return nil, err
	}
	opts := []parquet.EncryptOption{}
	switch c.Algorithm {
	case AESGCM:
		opts = append(opts, parquet.WithAlg(parquet.AesGcm))
	case AESGCMCTR:
		opts = append(opts, parquet.WithAlg(parquet.AesCtr))
	default:
		return nil, fmt.Errorf("unknown algorithm %d", c.Algorithm)
	}
	if len(c.FooterKeyMetadata) > 0 {
		opts = append(opts, parquet.WithFooterKeyMetadata(string(c.FooterKeyMetadata)))
	}
	if c.PlaintextFooter {
		if c.Algorithm == AESGCMCTR {
			// arrow-go, like Parquet C++, names AES_GCM_V1 (the signing
			// algorithm) in a plaintext footer whatever the pages use, so no
			// reader could tell the pages are CTR: refuse to write such a file.
			return nil, errors.New("plaintext footer with AES_GCM_CTR_V1 is not supported: arrow-go records AES_GCM_V1 in the footer and readers would fail on the CTR pages")
		}
		opts = append(opts, parquet.WithPlaintextFooter())
	}
	if len(c.AADPrefix) > 0 {
		opts = append(opts, parquet.WithAadPrefix(string(c.AADPrefix)))
		if c.DontStoreAADPrefix {
			opts = append(opts, parquet.DisableAadPrefixStorage())
		}
	} else if c.DontStoreAADPrefix {
		return nil, errors.New("DontStoreAADPrefix without an AAD prefix")
	}
	if len(c.ColumnKeys) > 0 {
		cols := parquet.ColumnPathToEncryptionPropsMap{}
		for path, ck := range c.ColumnKeys {
			if err := checkKey(fmt.Sprintf("column %q", path), ck.Key); err != nil {
				return nil, err
			}
			copts := []parquet.ColumnEncryptOption{parquet.WithKey(string(ck.Key))}
			if len(ck.KeyMetadata) > 0 {
				copts = append(copts, parquet.WithKeyMetadata(string(ck.KeyMetadata)))
			}
			cols[path] = parquet.NewColumnEncryptionProperties(path, copts...)
		}
		opts = append(opts, parquet.WithEncryptedColumns(cols))
	}
	return parquet.NewFileEncryptionProperties(string(c.FooterKey), opts...), nil
}

// NewWriter returns an Arrow-to-Parquet writer that encrypts with c. Extra
// writer properties (compression, row group size, ...) are applied first.
func NewWriter(w io.Writer, schema *arrow.Schema, c EncryptConfig, props ...parquet.WriterProperty) (*pqarrow.FileWriter, error) {
	fe, err := c.FileEncryptionProperties()
	if err != nil {
		return nil, err
	}
	// Every encrypted column must exist: arrow-go reports unknown column
	// paths only when the file is closed.
	for path := range c.ColumnKeys {
		if !schemaHasLeaf(schema, path) {
			return nil, fmt.Errorf("column key for %q: no such column in the schema", path)
		}
	}
	props = append(props, parquet.WithEncryptionProperties(fe))
	fw, err := pqarrow.NewFileWriter(schema, w, parquet.NewWriterProperties(props...), pqarrow.DefaultWriterProps())
	if err != nil {
		return nil, fmt.Errorf("encrypted parquet writer: %w", err)
	}
	return fw, nil
}

func schemaHasLeaf(s *arrow.Schema, path string) bool {
	sc, err := pqarrow.ToParquet(s, nil, pqarrow.DefaultWriterProps())
	if err != nil {
		return false
	}
	for i := 0; i < sc.NumColumns(); i++ {
		if sc.Column(i).ColumnPath().String() == path {
			return true
		}
	}
	return false
}
