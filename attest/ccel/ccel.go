// Package ccel parses the event log a TDX guest's firmware keeps in the ACPI
// CCEL table (Linux: /sys/firmware/acpi/tables/data/CCEL) and replays it
// into the values RTMR0-3 must hold.
//
// The log is the TCG2 "crypto agile" format of the TCG PC Client Platform
// Firmware Profile: a TCG_PCR_EVENT carrying the Spec ID Event03 (which
// lists the digest algorithms and their sizes), then TCG_PCR_EVENT2
// records, ended by a record header of all 0xFF or all 0x00 bytes (the
// unused rest of the log area). In a confidential-computing log the
// record's PCR index is the CC measurement register index of the UEFI
// specification: 0 MRTD, 1-4 RTMR0-3. Every record except EV_NO_ACTION
// with index 1-4 extends its RTMR: RTMR = SHA-384(RTMR ‖ SHA-384 digest).
//
// The log is untrusted input: Parse checks its structure strictly and
// nothing in it is believed until Replay matches the quoted RTMRs, and even
// then only the digests are: event types and data are not measured.
package ccel

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
)

// Digest algorithm identifiers of the TCG algorithm registry.
const (
	AlgSHA1   uint16 = 0x0004
	AlgSHA256 uint16 = 0x000B
	AlgSHA384 uint16 = 0x000C
	AlgSHA512 uint16 = 0x000D
	AlgSM3    uint16 = 0x0012
)

// knownSizes are the digest sizes of the algorithms whose size the log
// cannot choose.
var knownSizes = map[uint16]int{AlgSHA1: 20, AlgSHA256: 32, AlgSHA384: 48, AlgSHA512: 64, AlgSM3: 32}

// RTMRs is the number of runtime measurement registers; RTMR i is CC
// measurement register index i+1.
const RTMRs = 4

// DigestSize is the size of an RTMR and of the digests it is extended with.
const DigestSize = 48

const (
	maxAlgorithms = 16
	maxDigestSize = 64
	specSignature = "Spec ID Event03\x00"
)

// Algorithm is one digest algorithm the log's Spec ID event declares.
type Algorithm struct {
	ID   uint16 `json:"id"`
	Size int    `json:"size"`
}

// Digest is one algorithm's digest of an event.
type Digest struct {
	Alg   uint16 `json:"alg"`
	Value []byte `json:"value"`
}

// Event is one TCG_PCR_EVENT2 record.
type Event struct {
	// Offset is where the record starts in the log.
	Offset int `json:"offset"`
	// MRIndex is the CC measurement register: 0 MRTD, 1-4 RTMR0-3.
	MRIndex uint32   `json:"mr_index"`
	Type    uint32   `json:"type"`
	Digests []Digest `json:"digests"`
	Data    []byte   `json:"data"`
}

// SHA384 returns the event's SHA-384 digest, or nil.
func (e *Event) SHA384() []byte {
	for _, d := range e.Digests {
		if d.Alg == AlgSHA384 {
			return d.Value
		}
	}
	return nil
}

// RTMR returns the RTMR (0-3) the event extends, or false when it extends
// none: it is for MRTD (index 0, which only the TDX module measures) or an
// EV_NO_ACTION record.
func (e *Event) RTMR() (int, bool) {
	if e.Type == EvNoAction || e.MRIndex < 1 || e.MRIndex > RTMRs {
		return 0, false
	}
	return int(e.MRIndex) - 1, true
}

// Log is a parsed event log.
type Log struct {
	// SpecVersion is the Spec ID event's "major.minor.errata".
	SpecVersion string      `json:"spec_version"`
	Algorithms  []Algorithm `json:"algorithms"`
	Events      []Event     `json:"events"`
	// Length is the size of the log proper: the bytes after it are the
	// unused (0xFF or 0x00) part of the log area.
	Length int `json:"length"`
}

type reader struct {
	b   []byte
	off int
}

func (r *reader) need(n int, what string) error {
	if n < 0 || len(r.b)-r.off < n {
		return fmt.Errorf("truncated %s at offset %d: need %d bytes, have %d", what, r.off, n, len(r.b)-r.off)
	}
	return nil
}

func (r *reader) u8(what string) (uint8, error) {
	if err := r.need(1, what); err != nil {
		return 0, err
	}
	r.off++
	return r.b[r.off-1], nil
}

func (r *reader) u16(what string) (uint16, error) {
	if err := r.need(2, what); err != nil {
		return 0, err
	}
	r.off += 2
	return binary.LittleEndian.Uint16(r.b[r.off-2:]), nil
}

func (r *reader) u32(what string) (uint32, error) {
	if err := r.need(4, what); err != nil {
		return 0, err
	}
	r.off += 4
	return binary.LittleEndian.Uint32(r.b[r.off-4:]), nil
}

func (r *reader) take(n int, what string) ([]byte, error) {
	if err := r.need(n, what); err != nil {
		return nil, err
	}
	r.off += n
	return r.b[r.off-n : r.off : r.off], nil
}

// Parse parses a CCEL event log: the log area as the firmware left it
// (with its unused 0xFF or 0x00 tail) or cut at the log's end.
func Parse(b []byte) (*Log, error) {
	r := &reader{b: b}
	l := &Log{}
	if err := l.parseSpecID(r); err != nil {
		return nil, fmt.Errorf("event log: Spec ID event: %w", err)
	}
	for {
		if end, err := atEnd(r); err != nil {
			return nil, fmt.Errorf("event log: %w", err)
		} else if end {
			break
		}
		e, err := l.parseEvent(r)
		if err != nil {
			return nil, fmt.Errorf("event log: event %d (offset %d): %w", len(l.Events)+1, e.Offset, err)
		}
		l.Events = append(l.Events, e)
	}
	l.Length = r.off
	return l, nil
}

// atEnd reports whether the log ends at r: no bytes left, or a record
// header of eight 0xFF or eight 0x00 bytes (an EV_PREBOOT_CERT record for
// MRTD would look like the latter; firmware writes none). Everything after
// the end must be 0xFF or 0x00 too: nothing may hide behind the end marker.
func atEnd(r *reader) (bool, error) {
	rest := r.b[r.off:]
	if len(rest) == 0 {
		return true, nil
	}
	if len(rest) >= 8 && !bytes.Equal(rest[:8], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) && !bytes.Equal(rest[:8], make([]byte, 8)) {
		return false, nil
	}
	for i, c := range rest {
		if c != 0 && c != 0xff {
			if len(rest) < 8 {
				return false, fmt.Errorf("truncated event at offset %d: %d bytes left", r.off, len(rest))
			}
			return false, fmt.Errorf("byte %#02x at offset %d after the end of the log (offset %d): only the unused 0xFF or 0x00 log area may follow", c, r.off+i, r.off)
		}
	}
	return true, nil
}

func (l *Log) parseSpecID(r *reader) error {
	mr, err := r.u32("PCR index")
	if err != nil {
		return err
	}
	typ, err := r.u32("event type")
	if err != nil {
		return err
	}
	if typ != EvNoAction {
		return fmt.Errorf("first event has type %s, want EV_NO_ACTION (is this a TCG2 crypto-agile log?)", TypeName(typ))
	}
	if mr > RTMRs {
		// TDVF writes 0, OVMF 1; either way it extends nothing.
		return fmt.Errorf("first event is for register %d, want 0 to %d", mr, RTMRs)
	}
	sha1, err := r.take(20, "SHA-1 digest")
	if err != nil {
		return err
	}
	if !bytes.Equal(sha1, make([]byte, 20)) {
		return errors.New("digest is not zero")
	}
	size, err := r.u32("event size")
	if err != nil {
		return err
	}
	data, err := r.take(int(size), "event data")
	if err != nil {
		return err
	}
	d := &reader{b: data}
	sig, err := d.take(16, "signature")
	if err != nil {
		return err
	}
	if string(sig) != specSignature {
		return fmt.Errorf("signature %q, want %q (only the TCG2 crypto-agile format is supported)", bytes.TrimRight(sig, "\x00"), "Spec ID Event03")
	}
	if _, err := d.u32("platform class"); err != nil {
		return err
	}
	minor, _ := d.u8("spec version minor")
	major, _ := d.u8("spec version major")
	errata, _ := d.u8("spec errata")
	uintn, err := d.u8("uintn size")
	if err != nil {
		return err
	}
	if major != 2 {
		return fmt.Errorf("spec version %d.%d, want 2.x", major, minor)
	}
	if uintn != 1 && uintn != 2 {
		return fmt.Errorf("uintn size %d, want 1 or 2", uintn)
	}
	l.SpecVersion = fmt.Sprintf("%d.%d.%d", major, minor, errata)
	n, err := d.u32("number of algorithms")
	if err != nil {
		return err
	}
	if n == 0 || n > maxAlgorithms {
		return fmt.Errorf("%d digest algorithms, want 1 to %d", n, maxAlgorithms)
	}
	for range n {
		id, err := d.u16("algorithm id")
		if err != nil {
			return err
		}
		sz, err := d.u16("digest size")
		if err != nil {
			return err
		}
		if want, known := knownSizes[id]; known && int(sz) != want {
			return fmt.Errorf("algorithm %#04x has digest size %d, want %d", id, sz, want)
		}
		if sz == 0 || sz > maxDigestSize {
			return fmt.Errorf("algorithm %#04x has digest size %d, want 1 to %d", id, sz, maxDigestSize)
		}
		for _, a := range l.Algorithms {
			if a.ID == id {
				return fmt.Errorf("algorithm %#04x listed twice", id)
			}
		}
		l.Algorithms = append(l.Algorithms, Algorithm{ID: id, Size: int(sz)})
	}
	if l.size(AlgSHA384) == 0 {
		return errors.New("the log has no SHA-384 digests, which RTMRs need")
	}
	vn, err := d.u8("vendor info size")
	if err != nil {
		return err
	}
	if _, err := d.take(int(vn), "vendor info"); err != nil {
		return err
	}
	if d.off != len(data) {
		return fmt.Errorf("%d unexpected bytes at the end of the Spec ID event", len(data)-d.off)
	}
	return nil
}

func (l *Log) size(alg uint16) int {
	for _, a := range l.Algorithms {
		if a.ID == alg {
			return a.Size
		}
	}
	return 0
}

func (l *Log) parseEvent(r *reader) (Event, error) {
	e := Event{Offset: r.off}
	var err error
	if e.MRIndex, err = r.u32("register index"); err != nil {
		return e, err
	}
	if e.MRIndex > RTMRs {
		return e, fmt.Errorf("register index %d, want 0 (MRTD) to %d (RTMR%d)", e.MRIndex, RTMRs, RTMRs-1)
	}
	if e.Type, err = r.u32("event type"); err != nil {
		return e, err
	}
	n, err := r.u32("digest count")
	if err != nil {
		return e, err
	}
	if n == 0 || int(n) > len(l.Algorithms) {
		return e, fmt.Errorf("%d digests, want 1 to %d (the algorithms of the Spec ID event)", n, len(l.Algorithms))
	}
	for range n {
		alg, err := r.u16("digest algorithm")
		if err != nil {
			return e, err
		}
		sz := l.size(alg)
		if sz == 0 {
			return e, fmt.Errorf("digest algorithm %#04x is not declared by the Spec ID event", alg)
		}
		for _, d := range e.Digests {
			if d.Alg == alg {
				return e, fmt.Errorf("two digests for algorithm %#04x", alg)
			}
		}
		v, err := r.take(sz, "digest")
		if err != nil {
			return e, err
		}
		e.Digests = append(e.Digests, Digest{Alg: alg, Value: v})
	}
	if _, extends := e.RTMR(); extends && e.SHA384() == nil {
		return e, fmt.Errorf("%s for RTMR%d has no SHA-384 digest", TypeName(e.Type), e.MRIndex-1)
	}
	size, err := r.u32("event size")
	if err != nil {
		return e, err
	}
	if e.Data, err = r.take(int(size), "event data"); err != nil {
		return e, err
	}
	return e, nil
}

// Replay computes RTMR0-3 from the log: each starts at zero and is
// extended, in log order, with the SHA-384 digest of every event for it.
func (l *Log) Replay() [RTMRs][DigestSize]byte {
	var mr [RTMRs][DigestSize]byte
	for i := range l.Events {
		e := &l.Events[i]
		j, ok := e.RTMR()
		if !ok {
			continue
		}
		h := sha512.New384()
		h.Write(mr[j][:])
		h.Write(e.SHA384())
		h.Sum(mr[j][:0])
	}
	return mr
}

// DataIsDigested reports whether the event's SHA-384 digest is the digest
// of its data (possibly without a trailing NUL), so that the data is
// exactly what was measured.
func (e *Event) DataIsDigested() bool {
	d := e.SHA384()
	if d == nil {
		return false
	}
	h := sha512.Sum384(e.Data)
	if bytes.Equal(h[:], d) {
		return true
	}
	if n := len(e.Data); n > 0 && e.Data[n-1] == 0 {
		h = sha512.Sum384(e.Data[:n-1])
		return bytes.Equal(h[:], d)
	}
	return false
}
