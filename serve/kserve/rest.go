package kserve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/ppml/ppml/serve/model"
	"github.com/ppml/ppml/serve/tensor"
)

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// HeaderLength is the binary tensor data extension's header: the length of the JSON part of
// a body that binary tensor data follows.
const HeaderLength = "Inference-Header-Content-Length"

// Handler returns the REST API under /v2.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	get := func(pattern string, h http.HandlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				writeError(w, http.StatusMethodNotAllowed, errors.New("use GET"))
				return
			}
			h(w, r)
		})
	}
	get("/v2", s.serverMetadata)
	get("/v2/health/live", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	get("/v2/health/ready", func(w http.ResponseWriter, r *http.Request) {
		ready := s.Registry.Ready()
		code := http.StatusOK
		if !ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]bool{"ready": ready})
	})
	get("/v2/models/{name}", s.modelMetadata)
	get("/v2/models/{name}/versions/{version}", s.modelMetadata)
	get("/v2/models/{name}/ready", s.modelReady)
	get("/v2/models/{name}/versions/{version}/ready", s.modelReady)
	post := func(pattern string, h http.HandlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				writeError(w, http.StatusMethodNotAllowed, errors.New("use POST"))
				return
			}
			h(w, r)
		})
	}
	post("/v2/models/{name}/infer", s.inferHTTP)
	post("/v2/models/{name}/versions/{version}/infer", s.inferHTTP)
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no endpoint %s %s", r.Method, tensor.Clip(r.URL.Path)))
	})
	return mux
}

func (s *Server) serverMetadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"name": s.Name, "version": s.Version, "extensions": Extensions})
}

type metadataJSON struct {
	Name     string             `json:"name"`
	Versions []string           `json:"versions"`
	Platform string             `json:"platform"`
	Inputs   []model.TensorSpec `json:"inputs"`
	Outputs  []model.TensorSpec `json:"outputs"`
}

func (s *Server) modelMetadata(w http.ResponseWriter, r *http.Request) {
	e, err := s.Registry.Get(r.PathValue("name"), r.PathValue("version"))
	if err != nil {
		writeError(w, httpStatus(err), err)
		return
	}
	md := e.Metadata()
	writeJSON(w, http.StatusOK, metadataJSON{Name: md.Name, Versions: s.Registry.Versions(md.Name),
		Platform: md.Platform, Inputs: md.Inputs, Outputs: md.Outputs})
}

func (s *Server) modelReady(w http.ResponseWriter, r *http.Request) {
	e, err := s.Registry.Get(r.PathValue("name"), r.PathValue("version"))
	if err != nil {
		writeError(w, httpStatus(err), err)
		return
	}
	ready := e.Ready()
	code := http.StatusOK
	if !ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"name": e.Metadata().Name, "ready": ready})
}

// The request and response objects of the REST infer endpoint.
type (
	inferRequest struct {
		ID         string           `json:"id,omitempty"`
		Parameters map[string]any   `json:"parameters,omitempty"`
		Inputs     []requestInput   `json:"inputs"`
		Outputs    []requestedOuput `json:"outputs,omitempty"`
	}
	requestInput struct {
		Name       string          `json:"name"`
		Shape      []int64         `json:"shape"`
		DataType   string          `json:"datatype"`
		Parameters map[string]any  `json:"parameters,omitempty"`
		Data       json.RawMessage `json:"data"`
	}
	requestedOuput struct {
		Name       string         `json:"name"`
		Parameters map[string]any `json:"parameters,omitempty"`
	}
)

func (s *Server) inferHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name, version := r.PathValue("name"), r.PathValue("version")
	body := getBuffer()
	defer body.put()
	resp := getBuffer()
	defer resp.put()
	jsonLen, err := s.inferREST(w, r, name, version, body, resp)
	s.Metrics.Request("kserve_rest", name, outcome(err), time.Since(start))
	if err != nil {
		writeError(w, httpStatus(err), err)
		return
	}
	h := w.Header()
	if jsonLen >= 0 {
		h["Content-Type"] = octetStream
		h[HeaderLength] = []string{strconv.Itoa(jsonLen)}
	} else {
		h["Content-Type"] = applicationJSON
	}
	h["Content-Length"] = []string{strconv.Itoa(len(resp.b))}
	w.WriteHeader(http.StatusOK)
	w.Write(resp.b)
}

// Header values set without canonicalizing or allocating per request (the keys are
// canonical already).
var (
	applicationJSON = []string{"application/json"}
	octetStream     = []string{"application/octet-stream"}
)

// inferREST answers one infer request: it reads the body into body, writes the response
// into resp and returns the length of its JSON part when binary data follows it (-1 when
// the response is all JSON).
func (s *Server) inferREST(w http.ResponseWriter, r *http.Request, name, version string, body, resp *buffer) (int, error) {
	if err := body.readFrom(http.MaxBytesReader(w, r.Body, s.maxBytes()), r.ContentLength); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return 0, invalidf("request body is larger than %d bytes", s.maxBytes())
		}
		return 0, invalidf("reading the request body: %v", err)
	}
	jsonPart, binary := body.b, []byte(nil)
	if hl := r.Header.Get(HeaderLength); hl != "" {
		n, err := strconv.Atoi(hl)
		if err != nil || n < 0 || n > len(body.b) {
			return 0, invalidf("%s %q does not fit a %d-byte body", HeaderLength, tensor.Clip(hl), len(body.b))
		}
		jsonPart, binary = body.b[:n], body.b[n:]
	}
	call, err := decodeInferRequest(jsonPart, binary)
	if err != nil {
		return 0, err
	}
	if call.aliasesBody {
		// BYTES inputs read from binary data point into the body, and a request that timed
		// out may still sit in a batch: the body must not be reused.
		body.keep()
	}
	e, out, err := s.infer(r.Context(), name, version, call.inputs, call.outputs)
	if err != nil {
		return 0, err
	}
	var binaryOut [8]bool
	bin := binaryOut[:0]
	for _, o := range out {
		bin = append(bin, call.binaryOutput(o.Name))
	}
	md := e.Metadata()
	return encodeResponse(resp, &md, call.id, out, bin)
}

// inferCall is a decoded infer request.
type inferCall struct {
	id     string
	inputs []tensor.Tensor
	// outputs are the requested outputs' names, in order; outBinary their binary_data
	// parameters (-1: not given, 0: false, 1: true).
	outputs   []string
	outBinary []int8
	// binaryAll is the request's binary_data_output parameter.
	binaryAll bool
	// aliasesBody: some input's elements point into the request body.
	aliasesBody bool
	// binaryLeft is the binary data not yet taken by an input (decodeInferFast's state).
	binaryLeft []byte
}

// binaryOutput reports whether output name is answered as binary data.
func (c *inferCall) binaryOutput(name string) bool {
	for j, n := range c.outputs {
		if n == name && c.outBinary[j] >= 0 {
			return c.outBinary[j] == 1
		}
	}
	return c.binaryAll
}

// decodeInferRequest decodes the JSON part of an infer request and the binary data after
// it. The common request (inputs with name, shape, datatype and numeric data; plain ASCII
// strings) takes a specialised decoder; anything it does not handle, errors included, goes
// to the general decoder on encoding/json, so both accept the same requests with the same
// result and every error comes from the general one (FuzzInferRequestDecoders checks it).
func decodeInferRequest(jsonPart, binary []byte) (*inferCall, error) {
	if c, ok := decodeInferFast(jsonPart, binary); ok {
		return c, nil
	}
	return decodeInferGeneral(jsonPart, binary)
}

// decodeInferGeneral is the general decoder, on encoding/json.
func decodeInferGeneral(jsonPart, binary []byte) (*inferCall, error) {
	var req inferRequest
	dec := json.NewDecoder(bytes.NewReader(jsonPart))
	if err := dec.Decode(&req); err != nil {
		return nil, invalidf("request is not an inference request object: %v", err)
	}
	if dec.More() {
		return nil, invalidf("request has data after its JSON object (binary data needs the %s header)", HeaderLength)
	}
	c := &inferCall{id: req.ID, binaryAll: boolParam(req.Parameters, "binary_data_output")}
	var err error
	if c.inputs, c.aliasesBody, err = decodeInputs(req.Inputs, binary); err != nil {
		return nil, err
	}
	for _, o := range req.Outputs {
		b := int8(-1)
		if v, ok := o.Parameters["binary_data"].(bool); ok {
			b = 0
			if v {
				b = 1
			}
		}
		c.outputs = append(c.outputs, o.Name)
		c.outBinary = append(c.outBinary, b)
	}
	return c, nil
}

func boolParam(p map[string]any, name string) bool {
	v, _ := p[name].(bool)
	return v
}

// decodeInputs builds the input tensors from their JSON objects, taking the binary data of
// inputs that have a binary_data_size parameter from binary, in input order. aliases
// reports a BYTES input whose elements point into binary.
func decodeInputs(reqs []requestInput, binary []byte) (in []tensor.Tensor, aliases bool, err error) {
	if len(reqs) == 0 {
		return nil, false, invalidf("request has no inputs")
	}
	in = make([]tensor.Tensor, len(reqs))
	for i, ri := range reqs {
		dt, err := tensor.ParseDataType(ri.DataType)
		if err != nil {
			return nil, false, invalidf("input %q: %v", tensor.Clip(ri.Name), err)
		}
		if ri.Shape == nil {
			return nil, false, invalidf("input %q has no shape", tensor.Clip(ri.Name))
		}
		if size, ok := ri.Parameters["binary_data_size"]; ok {
			n, ok := size.(float64)
			if !ok || n < 0 || n != float64(int64(n)) || n > float64(len(binary)) {
				return nil, false, invalidf("input %q: binary_data_size %v does not fit the %d bytes of binary data left", tensor.Clip(ri.Name), size, len(binary))
			}
			if len(ri.Data) > 0 && string(bytes.TrimSpace(ri.Data)) != "null" {
				return nil, false, invalidf("input %q has both data and binary_data_size", tensor.Clip(ri.Name))
			}
			in[i], err = tensor.DecodeRaw(ri.Name, dt, ri.Shape, binary[:int(n)])
			binary = binary[int(n):]
			aliases = aliases || dt == tensor.Bytes
		} else {
			in[i], err = tensor.DecodeJSON(ri.Name, dt, ri.Shape, ri.Data)
		}
		if err != nil {
			return nil, false, &invalidError{err.Error()}
		}
	}
	if len(binary) > 0 {
		return nil, false, invalidf("%d bytes of binary data are left after the inputs that declare binary_data_size", len(binary))
	}
	return in, aliases, nil
}

// encodeResponse writes the response object into resp, with the outputs marked binary as
// binary data after it, and returns the length of the JSON part when binary data follows
// (-1 when none does).
func encodeResponse(resp *buffer, md *model.Metadata, id string, out []tensor.Tensor, binaryOut []bool) (int, error) {
	b := resp.b[:0]
	b = append(b, `{"model_name":`...)
	b = appendString(b, md.Name)
	b = append(b, `,"model_version":`...)
	b = appendString(b, md.Version)
	if id != "" {
		b = append(b, `,"id":`...)
		b = appendString(b, id)
	}
	b = append(b, `,"outputs":[`...)
	var bin []byte
	for i, o := range out {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendString(b, o.Name)
		b = append(b, `,"datatype":"`...)
		b = append(b, o.DataType...)
		b = append(b, `","shape":`...)
		b = appendShape(b, o.Shape)
		if binaryOut[i] {
			n := len(bin)
			bin = o.AppendRaw(bin)
			b = append(b, `,"parameters":{"binary_data_size":`...)
			b = strconv.AppendInt(b, int64(len(bin)-n), 10)
			b = append(b, `}}`...)
			continue
		}
		b = append(b, `,"data":`...)
		var err error
		if b, err = o.AppendJSON(b); err != nil {
			return 0, err
		}
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	resp.b = b
	if slices.Contains(binaryOut, true) {
		resp.b = append(b, bin...)
		return len(b), nil
	}
	return -1, nil
}

// appendString appends s as a JSON string, as encoding/json writes it.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendShape(b []byte, shape []int64) []byte {
	b = append(b, '[')
	for i, d := range shape {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, d, 10)
	}
	return append(b, ']')
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}

// writeError answers {"error": msg}, the protocol's error object.
func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}
