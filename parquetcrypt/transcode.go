package parquetcrypt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/parquet"
)

// Decryption works at the page level: each page header and page is
// decrypted and written out unchanged otherwise (same encodings, same
// compression, same statistics), and the footer is rewritten with the new
// offsets and without crypto fields. No value is decoded, so this is close to
// a copy at AES speed, and it is independent of arrow-go's page reader, which
// cannot skip the padded page-header frames parquet-java writes.
//
// Dropped from the output: page indexes (column/offset index), bloom
// filters and page CRCs (computed over ciphertext). All are optional.

// DecryptTo decrypts an encrypted Parquet file into a plaintext Parquet
// stream on w, one column chunk in memory at a time.
func DecryptTo(ctx context.Context, w io.Writer, r parquet.ReaderAtSeeker, keys KeyRetriever, opts ...Option) (int64, error) {
	f, err := Open(ctx, r, keys, opts...)
	if err != nil {
		return 0, err
	}
	return f.DecryptTo(ctx, w)
}

// DecryptTo writes the whole file as plaintext Parquet to w.
func (f *File) DecryptTo(ctx context.Context, w io.Writer) (int64, error) {
	all := make([]int, len(f.rowGroups))
	for i := range all {
		all[i] = i
	}
	return f.writePlain(ctx, w, all)
}

// WriteRowGroup writes row group i alone as a complete plaintext Parquet file.
func (f *File) WriteRowGroup(ctx context.Context, w io.Writer, i int) (int64, error) {
	if i < 0 || i >= len(f.rowGroups) {
		return 0, fmt.Errorf("row group %d out of range [0, %d)", i, len(f.rowGroups))
	}
	return f.writePlain(ctx, w, []int{i})
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (f *File) writePlain(ctx context.Context, w io.Writer, rowGroups []int) (int64, error) {
	cw := &countingWriter{w: w}
	if _, err := cw.Write(magicPlain); err != nil {
		return cw.n, err
	}
	t := transcoder{f: f, w: cw}
	newRGs := make([]any, 0, len(rowGroups))
	var rows int64
	for _, i := range rowGroups {
		if err := ctx.Err(); err != nil {
			return cw.n, err
		}
		rg, err := t.rowGroup(i)
		if err != nil {
			return cw.n, err
		}
		n, _ := rg.int(3)
		rows += n
		newRGs = append(newRGs, rg)
	}
	meta := f.meta.clone()
	meta.del(fmdEncryptionAlg, fmdFooterSigningKeyM)
	meta.set(fmdRowGroups, tList, &tlist{elem: tStruct, items: newRGs})
	if len(rowGroups) != len(f.rowGroups) {
		meta.setI64(3, rows) // num_rows
	}
	footer := meta.encode(nil)
	footer = binary.LittleEndian.AppendUint32(footer, uint32(len(footer)))
	footer = append(footer, magicPlain...)
	_, err := cw.Write(footer)
	return cw.n, err
}

func (s *tstruct) clone() *tstruct { return &tstruct{fields: append([]tField(nil), s.fields...)} }

type transcoder struct {
	f   *File
	w   *countingWriter
	buf []byte // one column chunk, reused
}

func (t *transcoder) rowGroup(i int) (*tstruct, error) {
	rg := t.f.rowGroups[i].clone()
	start := t.w.n
	cols := make([]any, len(t.f.chunks[i]))
	for j := range t.f.chunks[i] {
		cc, err := t.column(i, j)
		if err != nil {
			return nil, err
		}
		cols[j] = cc
	}
	rg.set(rgColumns, tList, &tlist{elem: tStruct, items: cols})
	rg.setI64(rgFileOffset, start)
	rg.setI64(rgTotalCompressedSize, t.w.n-start)
	return rg, nil
}

func (t *transcoder) column(rg, col int) (*tstruct, error) {
	ci := &t.f.chunks[rg][col]
	name := fmt.Sprintf("column %q (row group %d)", ci.path, rg)
	start, ok := ci.meta.int(cmdDataPageOffset)
	if !ok {
		return nil, fmt.Errorf("%s: no data page offset", name)
	}
	hasDict := false
	if d, ok := ci.meta.int(cmdDictPageOffset); ok && d > 0 && d < start {
		start, hasDict = d, true
	}
	total, _ := ci.meta.int(cmdTotalCompressedSize)
	if start < 4 || total <= 0 || total > t.f.dataEnd-start {
		return nil, fmt.Errorf("%s: chunk at %d of %d bytes lies outside the file's data", name, start, total)
	}
	if cap(t.buf) < int(total) {
		t.buf = make([]byte, total)
	}
	b := t.buf[:total]
	if _, err := t.f.r.ReadAt(b, start); err != nil {
		return nil, fmt.Errorf("%s: read: %w", name, err)
	}

	outStart := t.w.n
	dictOut, dataOut := int64(-1), int64(-1)
	page := 0 // data page ordinal, part of the AADs
	for pos := 0; pos < len(b); {
		hdrOut := t.w.n
		hdr, data, next, isDict, err := t.page(ci, rg, col, b, pos, page, hasDict && pos == 0)
		if err != nil {
			return nil, fmt.Errorf("%s page at offset %d: %w", name, start+int64(pos), err)
		}
		pos = next
		if isDict {
			if dictOut < 0 {
				dictOut = hdrOut
			}
		} else {
			if dataOut < 0 {
				dataOut = hdrOut
			}
			page++
		}
		if _, err := t.w.Write(hdr); err != nil {
			return nil, err
		}
		if _, err := t.w.Write(data); err != nil {
			return nil, err
		}
	}
	if dataOut < 0 {
		return nil, fmt.Errorf("%s: no data page", name)
	}
	if err := t.authenticateExtras(ci, rg, col); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	meta := ci.meta.clone()
	meta.setI64(cmdDataPageOffset, dataOut)
	if dictOut >= 0 {
		meta.setI64(cmdDictPageOffset, dictOut)
	} else {
		meta.del(cmdDictPageOffset)
	}
	meta.setI64(cmdTotalCompressedSize, t.w.n-outStart)
	meta.del(cmdIndexPageOffset, cmdBloomFilterOffset, cmdBloomFilterLength)

	cc := ci.chunk.clone()
	cc.del(ccOffsetIndexOffset, ccOffsetIndexLength, ccColumnIndexOffset, ccColumnIndexLength, ccCryptoMetaData, ccEncryptedMetaData)
	cc.setI64(ccFileOffset, outStart)
	cc.set(ccMetaData, tStruct, meta)
	return cc, nil
}

// authenticateExtras decrypts, and so authenticates, the encrypted modules
// the output leaves out (page indexes, bloom filters): a file with any
// changed byte is refused, not only one whose used bytes changed.
func (t *transcoder) authenticateExtras(ci *chunkInfo, rg, col int) error {
	if ci.cipher == nil {
		return nil
	}
	for _, m := range []struct {
		what        string
		module      byte
		offset, len int16
	}{
		{"column index", modColumnIndex, ccColumnIndexOffset, ccColumnIndexLength},
		{"offset index", modOffsetIndex, ccOffsetIndexOffset, ccOffsetIndexLength},
	} {
		off, ok1 := ci.chunk.int(m.offset)
		n, ok2 := ci.chunk.int(m.len)
		if !ok1 || !ok2 || n == 0 {
			continue
		}
		frame, err := t.readModule(off, n)
		if err != nil {
			return fmt.Errorf("%s: %w", m.what, err)
		}
		if _, err := ci.cipher.openGCM(frame, moduleAAD(t.f.fileAAD, m.module, rg, col, 0)); err != nil {
			return fmt.Errorf("decrypt %s: %w", m.what, err)
		}
	}
	off, ok := ci.meta.int(cmdBloomFilterOffset)
	if !ok {
		return nil
	}
	total, hasLen := ci.meta.int(cmdBloomFilterLength)
	var used int64
	for _, module := range []byte{modBloomHeader, modBloomBitset} {
		var lenBuf [frameLenSize]byte
		if off+used < 4 || off+used+frameLenSize > t.f.dataEnd {
			return fmt.Errorf("bloom filter at %d lies outside the file's data", off+used)
		}
		if _, err := t.f.r.ReadAt(lenBuf[:], off+used); err != nil {
			return fmt.Errorf("read bloom filter: %w", err)
		}
		n := frameLenSize + int64(binary.LittleEndian.Uint32(lenBuf[:]))
		frame, err := t.readModule(off+used, n)
		if err != nil {
			return fmt.Errorf("bloom filter: %w", err)
		}
		if _, err := ci.cipher.openGCM(frame, moduleAAD(t.f.fileAAD, module, rg, col, 0)); err != nil {
			return fmt.Errorf("decrypt bloom filter: %w", err)
		}
		used += n
	}
	if hasLen && total != used {
		return fmt.Errorf("bloom filter length %d, modules take %d", total, used)
	}
	return nil
}

func (t *transcoder) readModule(off, n int64) ([]byte, error) {
	if off < 4 || n < gcmOverhead || n > t.f.dataEnd-off {
		return nil, fmt.Errorf("module at %d of %d bytes lies outside the file's data", off, n)
	}
	b := make([]byte, n)
	if _, err := t.f.r.ReadAt(b, off); err != nil {
		return nil, err
	}
	return b, nil
}

var errPageOrdinal = errors.New("more than 32767 data pages in one column chunk")

// page decrypts the page (header and body) at b[pos:] and returns the
// plaintext header to write, the plaintext body, where the next page starts
// and whether it was a dictionary page.
func (t *transcoder) page(ci *chunkInfo, rg, col int, b []byte, pos, ordinal int, firstIsDict bool) (hdr, data []byte, next int, isDict bool, err error) {
	if ordinal > 32767 {
		return nil, nil, 0, false, errPageOrdinal
	}
	rest := b[pos:]
	var ph *tstruct
	var hdrLen int
	asDict := false // the header authenticated as a dictionary page header
	if ci.cipher == nil {
		if ph, hdrLen, err = decodeStruct(rest); err != nil {
			return nil, nil, 0, false, fmt.Errorf("page header: %w", err)
		}
	} else {
		n, err := frameLen(rest, len(rest)-frameLenSize)
		if err != nil {
			return nil, nil, 0, false, fmt.Errorf("encrypted page header: %w", err)
		}
		// The whole frame is skipped, whatever the Thrift decoder uses of the
		// plaintext: parquet-java pads header frames.
		hdrLen = frameLenSize + n
		frame := rest[:hdrLen]
		dictAAD := moduleAAD(t.f.fileAAD, modDictPageHeader, rg, col, 0)
		dataAAD := moduleAAD(t.f.fileAAD, modDataPageHeader, rg, col, ordinal)
		var pt []byte
		if pos == 0 {
			// Only the metadata says whether the first page is a dictionary
			// page, and some writers leave dictionary_page_offset unset: try
			// the other module type too, on a copy since a failed open may
			// scribble on its buffer. Either way the header authenticates.
			first, second := dataAAD, dictAAD
			if firstIsDict {
				first, second = dictAAD, dataAAD
			}
			spare := append([]byte(nil), frame...)
			asDict = firstIsDict
			if pt, err = ci.cipher.openGCM(frame, first); err != nil {
				pt, err = ci.cipher.openGCM(spare, second)
				asDict = !firstIsDict
			}
		} else {
			pt, err = ci.cipher.openGCM(frame, dataAAD)
		}
		if err != nil {
			return nil, nil, 0, false, fmt.Errorf("decrypt page header: %w", err)
		}
		if ph, _, err = decodeStruct(pt); err != nil {
			return nil, nil, 0, false, fmt.Errorf("parse decrypted page header: %w", err)
		}
	}
	typ, _ := ph.int(phType)
	size, ok := ph.int(phCompressedSize)
	if !ok || size < 0 || size > int64(len(rest)-hdrLen) {
		return nil, nil, 0, false, fmt.Errorf("page of %d bytes overruns its column chunk (%d bytes left)", size, len(rest)-hdrLen)
	}
	body := rest[hdrLen : hdrLen+int(size)]
	next = pos + hdrLen + int(size)
	switch typ {
	case pageDictionary:
		isDict = true
	case pageData, pageDataV2:
	default:
		return nil, nil, 0, false, fmt.Errorf("unsupported page type %d", typ)
	}
	if ci.cipher != nil && isDict != asDict {
		return nil, nil, 0, false, fmt.Errorf("page type %d does not match the module its header was encrypted as", typ)
	}
	if ci.cipher == nil {
		return rest[:hdrLen], body, next, isDict, nil
	}
	if t.f.alg == AESGCMCTR {
		data, err = ci.cipher.openCTR(body)
	} else if isDict {
		data, err = ci.cipher.openGCM(body, moduleAAD(t.f.fileAAD, modDictPage, rg, col, 0))
	} else {
		data, err = ci.cipher.openGCM(body, moduleAAD(t.f.fileAAD, modDataPage, rg, col, ordinal))
	}
	if err != nil {
		return nil, nil, 0, false, fmt.Errorf("decrypt page: %w", err)
	}
	ph.setI32(phCompressedSize, int32(len(data)))
	ph.del(phCRC)
	return ph.encode(nil), data, next, isDict, nil
}
