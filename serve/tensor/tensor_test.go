package tensor

import (
	"encoding/json"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func TestRoundTrips(t *testing.T) {
	for _, c := range []struct {
		dt   DataType
		json string
	}{
		{Bool, `[true,false]`}, {Int8, `[-128,127]`}, {Int16, `[-32768,7]`}, {Int32, `[-1,2147483647]`},
		{Int64, `[-9223372036854775808,1]`}, {Uint8, `[0,255]`}, {Uint16, `[65535,1]`}, {Uint32, `[4294967295,0]`},
		{Uint64, `[18446744073709551615,3]`}, {FP16, `[0.5,-2]`}, {FP32, `[0.1,3e+38]`}, {FP64, `[0.1,1e+300]`}, {Bytes, `["a","bc"]`},
	} {
		tt, err := DecodeJSON("x", c.dt, []int64{2}, json.RawMessage(c.json))
		if err != nil {
			t.Fatalf("%s: %v", c.dt, err)
		}
		raw := tt.AppendRaw(nil)
		back, err := DecodeRaw("x", c.dt, []int64{2}, raw)
		if err != nil {
			t.Fatalf("%s raw: %v", c.dt, err)
		}
		out, err := back.AppendJSON(nil)
		if err != nil || string(out) != c.json {
			t.Errorf("%s: %s → %s (%v)", c.dt, c.json, out, err)
		}
	}
	for _, bad := range []struct {
		dt   DataType
		json string
	}{{Int8, `[128,0]`}, {Uint8, `[-1,0]`}, {Bool, `[1,0]`}, {FP32, `["a",1]`}, {Int32, `[1.5,1]`}, {FP32, `[1]`}, {FP32, `[1,2,3]`}, {FP32, `[{},1]`}} {
		if _, err := DecodeJSON("x", bad.dt, []int64{2}, json.RawMessage(bad.json)); err == nil {
			t.Errorf("%s %s decoded", bad.dt, bad.json)
		}
	}
}

func TestFP16(t *testing.T) {
	for _, c := range []struct{ in, want float32 }{{1, 1}, {65504, 65504}, {1e6, float32(math.Inf(1))}, {5.9604645e-08, 5.9604645e-08}, {1.0009766, 1.0009766}, {0.1, 0.099975586}} {
		if got := RoundFP16(c.in); got != c.want {
			t.Errorf("RoundFP16(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func FuzzDecodeJSON(f *testing.F) {
	f.Add("FP32", int64(2), []byte(`[1.5,[2]]`))
	f.Add("BYTES", int64(1), []byte(`["x"]`))
	f.Add("INT8", int64(3), []byte(`[1,-2,3]`))
	f.Fuzz(func(t *testing.T, dt string, n int64, data []byte) {
		d, err := ParseDataType(dt)
		if err != nil {
			return
		}
		tt, err := DecodeJSON("x", d, []int64{n}, data)
		if err != nil {
			return
		}
		if err := tt.Validate(); err != nil {
			t.Fatalf("decoded an invalid tensor: %v", err)
		}
		tt.AppendJSON(nil)
	})
}

func FuzzDecodeRaw(f *testing.F) {
	f.Add("BYTES", int64(2), []byte("\x01\x00\x00\x00a\x00\x00\x00\x00"))
	f.Add("FP16", int64(1), []byte{0, 0x3c})
	f.Fuzz(func(t *testing.T, dt string, n int64, raw []byte) {
		d, err := ParseDataType(dt)
		if err != nil {
			return
		}
		tt, err := DecodeRaw("x", d, []int64{n}, raw)
		if err != nil {
			return
		}
		if err := tt.Validate(); err != nil {
			t.Fatalf("decoded an invalid tensor: %v", err)
		}
		if d != FP16 && string(tt.AppendRaw(nil)) != string(raw) {
			t.Fatalf("raw form does not round-trip")
		}
	})
}

// FuzzDecodeJSONArray checks DecodeJSONArray against DecodeJSON: whenever the fast decoder
// takes data, DecodeJSON takes it too and returns the same tensor.
func FuzzDecodeJSONArray(f *testing.F) {
	f.Add("FP32", int64(2), int64(1), []byte(`[1.5,[2]]`))
	f.Add("FP32", int64(2), int64(2), []byte(` [[1, -0.5e3], [0 ,1E-2]] `))
	f.Add("BYTES", int64(2), int64(0), []byte(`["x",""]`))
	f.Add("INT8", int64(3), int64(0), []byte(`[1,-2,3]`))
	f.Add("UINT64", int64(1), int64(0), []byte(`[18446744073709551615]`))
	f.Add("BOOL", int64(2), int64(0), []byte(`[true,false]`))
	f.Add("FP16", int64(1), int64(1), []byte(`[[[]],[65519]]`))
	f.Fuzz(func(t *testing.T, dt string, d0, d1 int64, data []byte) {
		d, err := ParseDataType(dt)
		if err != nil {
			return
		}
		shape := []int64{d0}
		if d1 != 0 {
			shape = append(shape, d1)
		}
		fast, ok := DecodeJSONArray("x", d, shape, data)
		if !ok {
			return
		}
		general, err := DecodeJSON("x", d, shape, data)
		if err != nil || !reflect.DeepEqual(fast, general) {
			t.Fatalf("DecodeJSONArray took %q: %+v; DecodeJSON: %+v, %v", data, fast, general, err)
		}
	})
}

// TestDecodeJSONBoundsElements: a shape is allocated only when the data has room for its
// elements (a BYTES element takes 24 bytes of memory and 3 of JSON).
func TestDecodeJSONBoundsElements(t *testing.T) {
	data := []byte(`["` + strings.Repeat("a", 1<<20) + `"]`)
	for _, n := range []int64{1 << 20, 1 << 30} {
		var err error
		if alloc := allocated(func() { _, err = DecodeJSON("x", Bytes, []int64{n}, data) }); alloc > 4<<20 {
			t.Errorf("shape [%d] with %d bytes of data: %d bytes allocated", n, len(data), alloc)
		}
		if err == nil || !strings.Contains(err.Error(), "the data holds fewer") {
			t.Errorf("shape [%d]: %v", n, err)
		}
		if _, ok := DecodeJSONArray("x", Bytes, []int64{n}, data); ok {
			t.Errorf("shape [%d]: DecodeJSONArray took it", n)
		}
	}
}

// allocated is the heap memory f allocates.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}
