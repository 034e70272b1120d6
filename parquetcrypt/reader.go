package parquetcrypt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/apache/arrow-go/v18/parquet"
)

// Parquet field ids this package reads or edits (parquet.thrift).
const (
	// FileMetaData
	fmdRowGroups         = 4
	fmdEncryptionAlg     = 8
	fmdFooterSigningKeyM = 9
	// RowGroup
	rgColumns             = 1
	rgFileOffset          = 5
	rgTotalCompressedSize = 6
	// ColumnChunk
	ccFilePath          = 1
	ccFileOffset        = 2
	ccMetaData          = 3
	ccOffsetIndexOffset = 4
	ccOffsetIndexLength = 5
	ccColumnIndexOffset = 6
	ccColumnIndexLength = 7
	ccCryptoMetaData    = 8
	ccEncryptedMetaData = 9
	// ColumnMetaData
	cmdPathInSchema        = 3
	cmdTotalCompressedSize = 7
	cmdDataPageOffset      = 9
	cmdIndexPageOffset     = 10
	cmdDictPageOffset      = 11
	cmdBloomFilterOffset   = 14
	cmdBloomFilterLength   = 15
	// PageHeader
	phType           = 1
	phCompressedSize = 3
	phCRC            = 4
	// FileCryptoMetaData
	fcmAlgorithm   = 1
	fcmKeyMetadata = 2
)

const (
	pageData       = 0
	pageIndex      = 1
	pageDictionary = 2
	pageDataV2     = 3
)

var (
	magicPlain     = []byte("PAR1")
	magicEncrypted = []byte("PARE")
)

// maxFooterSize bounds the footer a reader will load (1 GiB); real footers
// are kilobytes to megabytes.
const maxFooterSize = 1 << 30

// ErrNotEncrypted is returned by Open for a plaintext Parquet file unless
// AllowPlaintext was given: a file that should be encrypted but is not is
// more likely a mistake than intent.
var ErrNotEncrypted = errors.New("parquet file is not encrypted")

// Option configures Open.
type Option func(*config)

type config struct {
	aadPrefix      []byte
	allowPlaintext bool
}

// WithAADPrefix supplies the AAD prefix. Files written with
// "supply_aad_prefix" (the prefix is not stored) need it; for files that
// store a prefix it must match, which binds the file to its expected identity
// (a table name, say) and detects file swaps.
func WithAADPrefix(prefix []byte) Option {
	return func(c *config) { c.aadPrefix = append([]byte(nil), prefix...) }
}

// AllowPlaintext lets Open accept an unencrypted Parquet file.
func AllowPlaintext() Option { return func(c *config) { c.allowPlaintext = true } }

// File is an opened encrypted Parquet file whose footer and column metadata
// are decrypted and authenticated. Pages are decrypted only when a row group
// is read.
type File struct {
	r         io.ReaderAt
	size      int64
	dataEnd   int64 // first byte of the footer region
	encrypted bool  // any modular encryption at all
	alg       Algorithm
	fileAAD   []byte
	aadPrefix []byte
	footer    *moduleCipher
	meta      *tstruct // decrypted FileMetaData
	rowGroups []*tstruct
	chunks    [][]chunkInfo // [row group][column]
}

type chunkInfo struct {
	path   string
	meta   *tstruct      // plaintext ColumnMetaData
	cipher *moduleCipher // nil: column stored in plaintext
	chunk  *tstruct
}

// Open reads and authenticates the footer of an encrypted Parquet file and
// fetches, through keys, every key the file's columns need, so a missing or
// denied key fails here, before any page is decrypted.
func Open(ctx context.Context, r parquet.ReaderAtSeeker, keys KeyRetriever, opts ...Option) (f *File, err error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("parquet file size: %w", err)
	}
	f = &File{r: r, size: size}
	if err := f.readFooter(ctx, keys, &cfg); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *File) readFooter(ctx context.Context, keys KeyRetriever, cfg *config) error {
	if f.size < 12 {
		return fmt.Errorf("parquet file of %d bytes is too short", f.size)
	}
	var head, tail [8]byte
	if _, err := f.r.ReadAt(head[:4], 0); err != nil {
		return fmt.Errorf("read parquet header: %w", err)
	}
	if _, err := f.r.ReadAt(tail[:], f.size-8); err != nil {
		return fmt.Errorf("read parquet trailer: %w", err)
	}
	magic := tail[4:]
	if !bytes.Equal(magic, magicPlain) && !bytes.Equal(magic, magicEncrypted) {
		return fmt.Errorf("not a parquet file: trailer magic %q", magic)
	}
	if !bytes.Equal(head[:4], magic) {
		return fmt.Errorf("not a parquet file: header magic %q does not match trailer %q", head[:4], magic)
	}
	footerLen := int64(binary.LittleEndian.Uint32(tail[:4]))
	if footerLen > f.size-12 || footerLen > maxFooterSize {
		return fmt.Errorf("parquet footer length %d does not fit a file of %d bytes", footerLen, f.size)
	}
	f.dataEnd = f.size - 8 - footerLen
	footer := make([]byte, footerLen)
	if _, err := f.r.ReadAt(footer, f.dataEnd); err != nil {
		return fmt.Errorf("read parquet footer: %w", err)
	}

	if bytes.Equal(magic, magicEncrypted) {
		if err := f.openEncryptedFooter(ctx, footer, keys, cfg); err != nil {
			return err
		}
	} else if err := f.openPlaintextFooter(ctx, footer, keys, cfg); err != nil {
		return err
	}
	return f.loadColumns(ctx, keys)
}

// openEncryptedFooter handles "PARE" files: FileCryptoMetaData in plaintext,
// then the FileMetaData as one GCM module under the footer key.
func (f *File) openEncryptedFooter(ctx context.Context, footer []byte, keys KeyRetriever, cfg *config) error {
	f.encrypted = true
	fcm, n, err := decodeStruct(footer)
	if err != nil {
		return fmt.Errorf("parse file crypto metadata: %w", err)
	}
	if err := f.setAlgorithm(fcm.strct(fcmAlgorithm), cfg); err != nil {
		return err
	}
	keyMeta, _ := fcm.bytes(fcmKeyMetadata)
	c, err := cipherFor(ctx, keys, KeyRequest{KeyMetadata: keyMeta})
	if err != nil {
		return err
	}
	f.footer = c
	pt, err := c.openGCM(footer[n:], moduleAAD(f.fileAAD, modFooter, 0, 0, 0))
	if err != nil {
		return fmt.Errorf("decrypt footer: %w", err)
	}
	if f.meta, _, err = decodeStruct(pt); err != nil {
		return fmt.Errorf("parse decrypted footer: %w", err)
	}
	return nil
}

// openPlaintextFooter handles "PAR1" files: either no encryption at all, or
// encrypted columns with a plaintext footer signed by the footer key
// (nonce|tag after the FileMetaData).
func (f *File) openPlaintextFooter(ctx context.Context, footer []byte, keys KeyRetriever, cfg *config) error {
	meta, n, err := decodeStruct(footer)
	if err != nil {
		return fmt.Errorf("parse footer: %w", err)
	}
	f.meta = meta
	alg := meta.strct(fmdEncryptionAlg)
	if alg == nil {
		if !cfg.allowPlaintext {
			return ErrNotEncrypted
		}
		return nil
	}
	f.encrypted = true
	if err := f.setAlgorithm(alg, cfg); err != nil {
		return err
	}
	keyMeta, _ := meta.bytes(fmdFooterSigningKeyM)
	c, err := cipherFor(ctx, keys, KeyRequest{KeyMetadata: keyMeta})
	if err != nil {
		return fmt.Errorf("plaintext footer signature: %w", err)
	}
	if err := c.verifyFooterSignature(footer[:n], footer[n:], moduleAAD(f.fileAAD, modFooter, 0, 0, 0)); err != nil {
		return fmt.Errorf("verify plaintext footer signature: %w", err)
	}
	f.footer = c
	return nil
}

func (f *File) setAlgorithm(u *tstruct, cfg *config) error {
	if u == nil || len(u.fields) != 1 || u.fields[0].typ != tStruct {
		return errors.New("file crypto metadata: missing or malformed encryption algorithm")
	}
	switch u.fields[0].id {
	case 1:
		f.alg = AESGCM
	case 2:
		f.alg = AESGCMCTR
	default:
		return fmt.Errorf("unsupported encryption algorithm (union field %d)", u.fields[0].id)
	}
	a := u.fields[0].val.(*tstruct)
	stored, hasStored := a.bytes(1)
	unique, _ := a.bytes(2)
	supply := a.bool(3)
	prefix := stored
	switch {
	case supply && cfg.aadPrefix == nil:
		return errors.New("file was written with an AAD prefix that is not stored in it: supply it with WithAADPrefix")
	case cfg.aadPrefix != nil && hasStored && !constantTimeEqual(cfg.aadPrefix, stored):
		return errors.New("AAD prefix supplied does not match the prefix stored in the file")
	case cfg.aadPrefix != nil:
		prefix = cfg.aadPrefix
	}
	f.aadPrefix = append([]byte(nil), prefix...)
	f.fileAAD = append(append([]byte(nil), prefix...), unique...)
	return nil
}

func cipherFor(ctx context.Context, keys KeyRetriever, req KeyRequest) (*moduleCipher, error) {
	if keys == nil {
		return nil, fmt.Errorf("%s key: no key retriever: %w", req.what(), ErrKeyNotFound)
	}
	key, err := keys.Key(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("%s key: %w", req.what(), err)
	}
	c, err := newModuleCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%s key: %w", req.what(), err)
	}
	return c, nil
}

// loadColumns decrypts every column's metadata and gets every key.
func (f *File) loadColumns(ctx context.Context, keys KeyRetriever) error {
	rgs, err := f.meta.structs(fmdRowGroups)
	if err != nil {
		return fmt.Errorf("footer row groups: %w", err)
	}
	if len(rgs) > 32767 {
		return fmt.Errorf("footer lists %d row groups; encrypted files allow at most 32767", len(rgs))
	}
	f.rowGroups = rgs
	f.chunks = make([][]chunkInfo, len(rgs))
	ciphers := map[string]*moduleCipher{} // by column path and key metadata
	for i, rg := range rgs {
		cols, err := rg.structs(rgColumns)
		if err != nil {
			return fmt.Errorf("row group %d: %w", i, err)
		}
		if len(cols) > 32767 {
			return fmt.Errorf("row group %d has %d columns; encrypted files allow at most 32767", i, len(cols))
		}
		f.chunks[i] = make([]chunkInfo, len(cols))
		for j, cc := range cols {
			ci := chunkInfo{chunk: cc, meta: cc.strct(ccMetaData)}
			if ci.meta != nil {
				ci.path = strings.Join(ci.meta.strings(cmdPathInSchema), ".")
			}
			if path, ok := cc.bytes(ccFilePath); ok && len(path) > 0 {
				return fmt.Errorf("row group %d column %d: column chunks in other files (%q) are not supported", i, j, path)
			}
			if crypto := cc.strct(ccCryptoMetaData); crypto != nil {
				if !f.encrypted {
					return fmt.Errorf("row group %d column %d: encrypted column in a file without encryption algorithm", i, j)
				}
				if len(crypto.fields) != 1 || crypto.fields[0].typ != tStruct {
					return fmt.Errorf("row group %d column %d: malformed column crypto metadata", i, j)
				}
				switch crypto.fields[0].id {
				case 1: // ENCRYPTION_WITH_FOOTER_KEY
					if f.footer == nil {
						return fmt.Errorf("row group %d column %d: encrypted with the footer key, but the file has none", i, j)
					}
					ci.cipher = f.footer
				case 2: // ENCRYPTION_WITH_COLUMN_KEY
					ck := crypto.fields[0].val.(*tstruct)
					if p := ck.strings(1); len(p) > 0 {
						ci.path = strings.Join(p, ".")
					}
					km, _ := ck.bytes(2)
					id := ci.path + "\x00" + string(km)
					if ci.cipher = ciphers[id]; ci.cipher == nil {
						if ci.cipher, err = cipherFor(ctx, keys, KeyRequest{Column: ci.path, KeyMetadata: km}); err != nil {
							return err
						}
						ciphers[id] = ci.cipher
					}
				default:
					return fmt.Errorf("row group %d column %d: unknown column crypto kind %d", i, j, crypto.fields[0].id)
				}
				if enc, ok := cc.bytes(ccEncryptedMetaData); ok {
					frame := append([]byte(nil), enc...)
					pt, err := ci.cipher.openGCM(frame, moduleAAD(f.fileAAD, modColumnMetaData, i, j, 0))
					if err != nil {
						return fmt.Errorf("decrypt metadata of column %q (row group %d): %w", ci.path, i, err)
					}
					if ci.meta, _, err = decodeStruct(pt); err != nil {
						return fmt.Errorf("parse decrypted metadata of column %q (row group %d): %w", ci.path, i, err)
					}
				}
			}
			if ci.meta == nil {
				return fmt.Errorf("row group %d column %d (%q): no column metadata", i, j, ci.path)
			}
			f.chunks[i][j] = ci
		}
	}
	return nil
}

// NumRowGroups is the number of row groups in the file.
func (f *File) NumRowGroups() int { return len(f.rowGroups) }

// AADPrefix is the AAD prefix the file was decrypted with (stored in the
// file or supplied), empty when it has none. A caller that did not supply
// one can check it against the identity it expects.
func (f *File) AADPrefix() []byte { return append([]byte(nil), f.aadPrefix...) }

// Algorithm is the file's encryption algorithm.
func (f *File) Algorithm() Algorithm { return f.alg }

// Columns lists the column paths of the first row group.
func (f *File) Columns() []string {
	if len(f.chunks) == 0 {
		return nil
	}
	out := make([]string, len(f.chunks[0]))
	for i, c := range f.chunks[0] {
		out[i] = c.path
	}
	return out
}
