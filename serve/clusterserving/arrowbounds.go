package clusterserving

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/memory"
	flatbuffers "github.com/google/flatbuffers/go"
)

// Bounds checkArrowStream enforces before arrow-go sees a record. arrow-go sizes slices by the
// counts an IPC stream declares (a schema's field count, a field's children, metadata pairs)
// before it reads them, so a few hundred bytes can announce billions of fields and make it
// allocate gigabytes (FuzzDecodeArrow found one). A Cluster Serving record has a handful of
// columns, a few rows and a nesting depth of three.
const (
	maxArrowFields   = 1024    // fields in a schema, all nesting levels together
	maxArrowDepth    = 16      // nesting of struct and list fields
	maxArrowRows     = 1 << 20 // rows of a record batch
	maxArrowMessages = 16      // schema, dictionaries and the batch
	// maxArrowDecompressed bounds the buffers of a compressed stream after decompression,
	// all together: arrow-go allocates each buffer at the length its 8-byte prefix declares
	// before it decompresses anything.
	maxArrowDecompressed = 4 * MaxRecordBytes
	// maxArrowAllocation bounds what arrow-go may allocate while reading one stream (the
	// body and decompressed buffers), whatever path it takes: the allocator it is given
	// refuses more (arrowBudget).
	maxArrowAllocation = MaxRecordBytes + maxArrowDecompressed + 1<<20
)

// Message header types and table slots of Arrow's Message.fbs / Schema.fbs. A slot's vtable
// offset is 4 + 2 × its field index.
const (
	headerSchema          = 1
	headerDictionaryBatch = 2
	headerRecordBatch     = 3

	slotMessageHeaderType = 4 + 2*1
	slotMessageHeader     = 4 + 2*2
	slotMessageBodyLength = 4 + 2*3
	slotMessageMetadata   = 4 + 2*4

	slotSchemaFields   = 4 + 2*1
	slotSchemaMetadata = 4 + 2*2
	slotSchemaFeatures = 4 + 2*3

	slotFieldChildren = 4 + 2*5
	slotFieldMetadata = 4 + 2*6

	slotBatchLength      = 4 + 2*0
	slotBatchNodes       = 4 + 2*1
	slotBatchBuffers     = 4 + 2*2
	slotBatchCompression = 4 + 2*3
	slotBatchVariadic    = 4 + 2*4

	slotDictionaryData = 4 + 2*1
)

// checkArrowStream walks the framing and metadata of an Arrow IPC stream and refuses declared
// counts and lengths that do not fit in the bytes there are, or exceed the bounds above. It
// does not decode values: arrow-go does that afterwards on a stream whose sizes are sane.
func checkArrowStream(b []byte) (err error) {
	defer func() {
		// flatbuffers' accessors index without checks; a malformed table panics.
		if r := recover(); r != nil {
			err = errors.New("malformed message metadata")
		}
	}()
	fields := 0
	decompressed := int64(0)
	for n := 0; len(b) > 0; n++ {
		if n == maxArrowMessages {
			return fmt.Errorf("more than %d messages", maxArrowMessages)
		}
		if len(b) < 4 {
			return errors.New("truncated message length")
		}
		size := binary.LittleEndian.Uint32(b)
		b = b[4:]
		if size == 0xFFFFFFFF { // continuation marker, then the length
			if len(b) < 4 {
				return errors.New("truncated message length")
			}
			size = binary.LittleEndian.Uint32(b)
			b = b[4:]
		}
		if size == 0 {
			return nil // end of stream
		}
		if size < 8 || uint64(size) > uint64(len(b)) {
			return fmt.Errorf("message metadata of %d bytes where %d remain", int32(size), len(b))
		}
		meta := b[:size]
		b = b[size:]
		msg := rootTable(meta)
		body := msg.GetInt64Slot(slotMessageBodyLength, 0)
		if body < 0 || body > int64(len(b)) {
			return fmt.Errorf("message body of %d bytes where %d remain", body, len(b))
		}
		bodyBytes := b[:body]
		b = b[body:]
		if err := checkKeyValues(msg, slotMessageMetadata); err != nil {
			return err
		}
		header, ok := tableAt(msg, slotMessageHeader)
		if !ok {
			continue
		}
		switch msg.GetByteSlot(slotMessageHeaderType, 0) {
		case headerSchema:
			if err := checkKeyValues(header, slotSchemaMetadata); err != nil {
				return err
			}
			if _, err := vector(header, slotSchemaFeatures, 8); err != nil {
				return err
			}
			if err := checkFields(header, slotSchemaFields, 0, &fields); err != nil {
				return err
			}
		case headerRecordBatch:
			if err := checkBatch(header, bodyBytes, &decompressed); err != nil {
				return err
			}
		case headerDictionaryBatch:
			if data, ok := tableAt(header, slotDictionaryData); ok {
				if err := checkBatch(data, bodyBytes, &decompressed); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func checkFields(t flatbuffers.Table, slot flatbuffers.VOffsetT, depth int, total *int) error {
	n, err := vector(t, slot, 4)
	if err != nil || n.len == 0 {
		return err
	}
	if depth > maxArrowDepth {
		return fmt.Errorf("fields nested more than %d deep", maxArrowDepth)
	}
	if *total += n.len; *total > maxArrowFields {
		return fmt.Errorf("more than %d fields", maxArrowFields)
	}
	for i := 0; i < n.len; i++ {
		f := elementTable(t, n, i)
		if err := checkKeyValues(f, slotFieldMetadata); err != nil {
			return err
		}
		if err := checkFields(f, slotFieldChildren, depth+1, total); err != nil {
			return err
		}
	}
	return nil
}

// checkBatch checks a record (or dictionary) batch's counts, that its buffers lie in its
// body and, when the body is compressed, the lengths its buffers declare once decompressed:
// decompressed counts them over the stream.
func checkBatch(t flatbuffers.Table, body []byte, decompressed *int64) error {
	if rows := t.GetInt64Slot(slotBatchLength, 0); rows < 0 || rows > maxArrowRows {
		return fmt.Errorf("record batch declares %d rows (at most %d)", rows, maxArrowRows)
	}
	nodes, err := vector(t, slotBatchNodes, 16) // FieldNode {length, null_count int64}
	if err != nil {
		return err
	}
	if nodes.len > maxArrowFields {
		return fmt.Errorf("record batch declares %d field nodes (at most %d)", nodes.len, maxArrowFields)
	}
	for i := 0; i < nodes.len; i++ {
		at := nodes.start + flatbuffers.UOffsetT(16*i)
		length, nulls := t.GetInt64(at), t.GetInt64(at+8)
		if length < 0 || length > 8*MaxRecordBytes || nulls < 0 || nulls > length {
			return fmt.Errorf("field node %d declares %d values, %d null", i, length, nulls)
		}
	}
	bufs, err := vector(t, slotBatchBuffers, 16) // Buffer {offset, length int64}
	if err != nil {
		return err
	}
	_, compressed := tableAt(t, slotBatchCompression)
	for i := 0; i < bufs.len; i++ {
		at := bufs.start + flatbuffers.UOffsetT(16*i)
		off, length := t.GetInt64(at), t.GetInt64(at+8)
		if off < 0 || length < 0 || off > int64(len(body)) || length > int64(len(body))-off {
			return fmt.Errorf("buffer %d (%d bytes at %d) lies outside the %d-byte message body", i, length, off, len(body))
		}
		if !compressed || length == 0 {
			continue
		}
		// A compressed buffer starts with its length once decompressed (-1: stored as is).
		if length < 8 {
			return fmt.Errorf("compressed buffer %d is %d bytes, shorter than its length prefix", i, length)
		}
		n := int64(binary.LittleEndian.Uint64(body[off:]))
		if n == -1 {
			continue
		}
		if n < 0 || n > maxArrowDecompressed-*decompressed {
			return fmt.Errorf("compressed buffer %d declares %d bytes once decompressed; a record's buffers hold at most %d together", i, n, maxArrowDecompressed)
		}
		*decompressed += n
	}
	_, err = vector(t, slotBatchVariadic, 8)
	return err
}

// arrowBudget is the allocator arrow-go reads a record with: it refuses (by panicking with
// errArrowBudget, which DecodeArrow recovers) to hand out more than its budget in all, so
// a length checkArrowStream did not foresee cannot make the process allocate without bound.
type arrowBudget struct {
	mem  memory.Allocator
	left int
}

var errArrowBudget = fmt.Errorf("the Arrow stream's buffers need more than %d bytes", maxArrowAllocation)

func (a *arrowBudget) take(n int) {
	if n < 0 || n > a.left {
		panic(errArrowBudget)
	}
	a.left -= n
}

func (a *arrowBudget) Allocate(size int) []byte {
	a.take(size)
	return a.mem.Allocate(size)
}

func (a *arrowBudget) Reallocate(size int, b []byte) []byte {
	if size > len(b) {
		a.take(size - len(b))
	}
	return a.mem.Reallocate(size, b)
}

func (a *arrowBudget) Free(b []byte) {
	a.left += len(b)
	a.mem.Free(b)
}

// checkKeyValues checks a custom_metadata vector of KeyValue tables.
func checkKeyValues(t flatbuffers.Table, slot flatbuffers.VOffsetT) error {
	_, err := vector(t, slot, 4)
	return err
}

type vec struct {
	start flatbuffers.UOffsetT
	len   int
}

// vector reads the vector at slot and checks that its elements of elem bytes lie inside the
// buffer.
func vector(t flatbuffers.Table, slot flatbuffers.VOffsetT, elem int) (vec, error) {
	o := flatbuffers.UOffsetT(t.Offset(slot))
	if o == 0 {
		return vec{}, nil
	}
	start := t.Vector(o)
	n := t.VectorLen(o)
	if n < 0 || uint64(start)+uint64(n)*uint64(elem) > uint64(len(t.Bytes)) {
		return vec{}, fmt.Errorf("message metadata declares %d entries in %d bytes", n, len(t.Bytes))
	}
	return vec{start, n}, nil
}

func rootTable(buf []byte) flatbuffers.Table {
	return flatbuffers.Table{Bytes: buf, Pos: flatbuffers.GetUOffsetT(buf)}
}

func tableAt(t flatbuffers.Table, slot flatbuffers.VOffsetT) (flatbuffers.Table, bool) {
	o := flatbuffers.UOffsetT(t.Offset(slot))
	if o == 0 {
		return flatbuffers.Table{}, false
	}
	return flatbuffers.Table{Bytes: t.Bytes, Pos: t.Indirect(t.Pos + o)}, true
}

func elementTable(t flatbuffers.Table, v vec, i int) flatbuffers.Table {
	return flatbuffers.Table{Bytes: t.Bytes, Pos: t.Indirect(v.start + flatbuffers.UOffsetT(4*i))}
}
