package kserve

import (
	"encoding/binary"
	"math"
	"reflect"
	"testing"
)

// The request shapes clients send most: the benchmark's (keys sorted, as Go's encoding/json
// writes a map), the specification's example (id, requested outputs), nested data, and
// Triton's binary header. The fast decoder must take each, with the general decoder's
// result; a regression here would silently send every request down the slow path.
var commonRequests = []struct {
	name         string
	json, binary string
}{
	{"bench", `{"inputs":[{"data":[0.5,-1.25e-3,3,0],"datatype":"FP32","name":"input","shape":[1,4]}]}`, ""},
	{"spec example", `{"id":"42","inputs":[{"name":"input0","shape":[2,2],"datatype":"UINT32","data":[1,2,3,4]},{"name":"input1","shape":[3],"datatype":"BOOL","data":[true,false,true]}],"outputs":[{"name":"output0"}]}`, ""},
	{"nested, spaced", "{ \"inputs\" : [ { \"name\" : \"x\" , \"shape\" : [ 2 , 2 ] , \"datatype\" : \"FP64\" , \"data\" : [ [ 1 , 2 ] ,\n[ 3 , 4 ] ] } ] }\n", ""},
	{"strings", `{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","data":["a b",""]}],"parameters":{"binary_data_output":true,"x":1}}`, ""},
	{"triton binary", `{"inputs":[{"name":"input","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":8}}],"outputs":[{"name":"prediction","parameters":{"binary_data":true}}]}`, "\x00\x00\x80\x3f\x00\x00\x00\x40"},
	{"binary BYTES", `{"inputs":[{"name":"b","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":6}}]}`, "\x02\x00\x00\x00hi"},
}

func TestFastDecoderTakesCommonRequests(t *testing.T) {
	for _, c := range commonRequests {
		fast, ok := decodeInferFast([]byte(c.json), []byte(c.binary))
		if !ok {
			t.Errorf("%s: the fast decoder declined %s", c.name, c.json)
			continue
		}
		general, err := decodeInferGeneral([]byte(c.json), []byte(c.binary))
		if err != nil || !reflect.DeepEqual(fast, general) {
			t.Errorf("%s: fast %+v, general %+v (%v)", c.name, fast, general, err)
		}
	}
	c, _ := decodeInferFast([]byte(commonRequests[4].json), []byte(commonRequests[4].binary))
	if v := math.Float32frombits(binary.LittleEndian.Uint32([]byte(commonRequests[4].binary))); c.inputs[0].F32[0] != v || !c.binaryOutput("prediction") || c.aliasesBody {
		t.Errorf("triton binary: %+v", c)
	}
	if c, _ := decodeInferFast([]byte(commonRequests[5].json), []byte(commonRequests[5].binary)); !c.aliasesBody {
		t.Error("binary BYTES input: not marked as pointing into the body")
	}
}

// TestFastDecoderDeclines: requests outside the fast decoder's grammar, or that the general
// decoder refuses, go to the general decoder, which gives the answer (and the error).
func TestFastDecoderDeclines(t *testing.T) {
	for _, s := range []string{
		`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"inputs":[]}`,                   // repeated key
		`{"Inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`,                               // a key encoding/json matches case-insensitively
		`{"inputs":[{"name":"x\u0041","shape":[1],"datatype":"FP32","data":[1]}]}`,                         // an escape
		`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"extra":null}`,                  // an unknown member
		`{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1]}]}`,                               // too few elements
		`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1e39]}]}`,                            // out of range
		`{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[1.0]}]}`,                             // not an integer
		`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":1}]}`,                                 // a scalar
		`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[01]}]}`,                              // not JSON
		`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":{"a":1,"a":2}}]}`,    // repeated parameter
		`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"parameters":{"unused":1e400}}`, // a number encoding/json refuses
		`{"inputs":[]}`,
		`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]} x`,
	} {
		if c, ok := decodeInferFast([]byte(s), nil); ok {
			t.Errorf("fast decoder took %s: %+v", s, c)
		}
	}
}

// FuzzInferRequestDecoders checks that the fast and general decoders agree on every input:
// whenever the fast decoder takes a request, the general one takes it too with the same
// result, and decodeInferRequest answers as the general decoder does (same result or the
// same error).
func FuzzInferRequestDecoders(f *testing.F) {
	for _, c := range commonRequests {
		f.Add([]byte(c.json), []byte(c.binary))
	}
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[1,1],"datatype":"FP16","data":[[65504]]}],"outputs":[{"name":"y","parameters":{"binary_data":false}}],"id":""}`), []byte(nil))
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[1],"datatype":"FP64","data":[1e308],"parameters":{"n":-1.5e-3,"s":"v"}}],"parameters":{"binary_data_output":false}}`), []byte(nil))
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"parameters":{"unused":1e400}}`), []byte(nil))
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[2],"datatype":"INT64","data":[-9223372036854775808,9223372036854775807]},{"name":"u","shape":[],"datatype":"UINT8","data":[255]}]}`), []byte(nil))
	f.Fuzz(func(t *testing.T, jsonPart, bin []byte) {
		general, gerr := decodeInferGeneral(jsonPart, bin)
		fast, ok := decodeInferFast(jsonPart, bin)
		if ok && (gerr != nil || !reflect.DeepEqual(fast, general)) {
			t.Fatalf("the fast decoder took %q: %+v; the general one: %+v, %v", jsonPart, fast, general, gerr)
		}
		got, err := decodeInferRequest(jsonPart, bin)
		if (err == nil) != (gerr == nil) || (err != nil && err.Error() != gerr.Error()) || (err == nil && !reflect.DeepEqual(got, general)) {
			t.Fatalf("decodeInferRequest: %+v, %v; the general decoder: %+v, %v", got, err, general, gerr)
		}
	})
}
