package parquetcrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
)

// Parquet modular encryption (parquet-format Encryption.md): every module of
// a file (footer, column metadata, page header, page) is encrypted on its own,
// framed as length(4, LE) | nonce(12) | ciphertext | [tag(16)], with an AAD
// that binds it to its file, kind and position.

// Module types used in AADs.
const (
	modFooter         = 0
	modColumnMetaData = 1
	modDataPage       = 2
	modDictPage       = 3
	modDataPageHeader = 4
	modDictPageHeader = 5
	modColumnIndex    = 6
	modOffsetIndex    = 7
	modBloomHeader    = 8
	modBloomBitset    = 9
)

const (
	nonceLen = 12
	tagLen   = 16
	// frameLenSize is the 4-byte little-endian length that starts every module.
	frameLenSize = 4
	// gcmOverhead is what a GCM module adds to its plaintext.
	gcmOverhead = frameLenSize + nonceLen + tagLen
	ctrOverhead = frameLenSize + nonceLen
)

// Algorithm is a Parquet encryption algorithm.
type Algorithm int

const (
	// AESGCM (AES_GCM_V1) encrypts every module with AES-GCM.
	AESGCM Algorithm = iota
	// AESGCMCTR (AES_GCM_CTR_V1) encrypts pages with AES-CTR (no
	// authentication of page data) and all metadata with AES-GCM.
	AESGCMCTR
)

func (a Algorithm) String() string {
	if a == AESGCMCTR {
		return "AES_GCM_CTR_V1"
	}
	return "AES_GCM_V1"
}

// errAuth is returned when a module fails authentication: the key is wrong or
// the bytes were changed.
var errAuth = errors.New("authentication failed (wrong key or tampered bytes)")

func moduleAAD(fileAAD []byte, module byte, rowGroup, column, page int) []byte {
	aad := make([]byte, 0, len(fileAAD)+7)
	aad = append(aad, fileAAD...)
	aad = append(aad, module)
	if module == modFooter {
		return aad
	}
	aad = binary.LittleEndian.AppendUint16(aad, uint16(rowGroup))
	aad = binary.LittleEndian.AppendUint16(aad, uint16(column))
	if module == modDataPage || module == modDataPageHeader {
		aad = binary.LittleEndian.AppendUint16(aad, uint16(page))
	}
	return aad
}

// moduleCipher decrypts modules under one key.
type moduleCipher struct {
	block cipher.Block
	gcm   cipher.AEAD
}

func newModuleCipher(key []byte) (*moduleCipher, error) {
	switch len(key) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("key is %d bytes, want 16, 24 or 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &moduleCipher{block: block, gcm: gcm}, nil
}

// frameLen reads the length prefix of a module and checks it against the
// bytes that may hold it.
func frameLen(b []byte, max int) (int, error) {
	if len(b) < frameLenSize {
		return 0, fmt.Errorf("module length prefix truncated")
	}
	n := binary.LittleEndian.Uint32(b)
	if uint64(n) > uint64(max) {
		return 0, fmt.Errorf("module length %d exceeds the %d bytes available", n, max)
	}
	return int(n), nil
}

// openGCM decrypts a whole GCM module (length prefix included) in place and
// returns the plaintext, which aliases frame.
func (c *moduleCipher) openGCM(frame, aad []byte) ([]byte, error) {
	n, err := frameLen(frame, len(frame)-frameLenSize)
	if err != nil {
		return nil, err
	}
	if n != len(frame)-frameLenSize {
		return nil, fmt.Errorf("module length %d does not match its %d bytes", n, len(frame)-frameLenSize)
	}
	if n < nonceLen+tagLen {
		return nil, fmt.Errorf("module of %d bytes is shorter than nonce and tag", n)
	}
	nonce := frame[frameLenSize : frameLenSize+nonceLen]
	ct := frame[frameLenSize+nonceLen:]
	pt, err := c.gcm.Open(ct[:0], nonce, ct, aad)
	if err != nil {
		return nil, errAuth
	}
	return pt, nil
}

// openCTR decrypts a whole CTR module in place. CTR modules carry no tag:
// a wrong key or changed bytes show up when the page is decoded.
func (c *moduleCipher) openCTR(frame []byte) ([]byte, error) {
	n, err := frameLen(frame, len(frame)-frameLenSize)
	if err != nil {
		return nil, err
	}
	if n != len(frame)-frameLenSize || n < nonceLen {
		return nil, fmt.Errorf("CTR module length %d does not match its %d bytes", n, len(frame)-frameLenSize)
	}
	var iv [aes.BlockSize]byte
	copy(iv[:], frame[frameLenSize:frameLenSize+nonceLen])
	iv[15] = 1 // the spec starts the 32-bit block counter at 1
	ct := frame[frameLenSize+nonceLen:]
	cipher.NewCTR(c.block, iv[:]).XORKeyStream(ct, ct)
	return ct, nil
}

// verifyFooterSignature checks the nonce|tag signature a plaintext footer
// carries: the GCM tag of the footer bytes under the footer key.
func (c *moduleCipher) verifyFooterSignature(footer, sig, aad []byte) error {
	if len(sig) != nonceLen+tagLen {
		return fmt.Errorf("footer signature is %d bytes, want %d", len(sig), nonceLen+tagLen)
	}
	sealed := c.gcm.Seal(nil, sig[:nonceLen], footer, aad)
	if !constantTimeEqual(sealed[len(sealed)-tagLen:], sig[nonceLen:]) {
		return errAuth
	}
	return nil
}
