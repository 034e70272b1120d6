package kserve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
	resp, err := s.inferREST(w, r, name, version)
	s.Metrics.Request("kserve_rest", name, outcome(err), time.Since(start))
	if err != nil {
		writeError(w, httpStatus(err), err)
		return
	}
	h := w.Header()
	if resp.jsonLen >= 0 {
		h.Set("Content-Type", "application/octet-stream")
		h.Set(HeaderLength, strconv.Itoa(resp.jsonLen))
	} else {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.body)))
	w.WriteHeader(http.StatusOK)
	w.Write(resp.body)
}

type restResponse struct {
	body    []byte
	jsonLen int // ≥ 0 when binary data follows the JSON
}

func (s *Server) inferREST(w http.ResponseWriter, r *http.Request, name, version string) (*restResponse, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBytes()))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, invalidf("request body is larger than %d bytes", s.maxBytes())
		}
		return nil, invalidf("reading the request body: %v", err)
	}
	jsonPart, binary := body, []byte(nil)
	if hl := r.Header.Get(HeaderLength); hl != "" {
		n, err := strconv.Atoi(hl)
		if err != nil || n < 0 || n > len(body) {
			return nil, invalidf("%s %q does not fit a %d-byte body", HeaderLength, tensor.Clip(hl), len(body))
		}
		jsonPart, binary = body[:n], body[n:]
	}
	var req inferRequest
	dec := json.NewDecoder(bytes.NewReader(jsonPart))
	if err := dec.Decode(&req); err != nil {
		return nil, invalidf("request is not an inference request object: %v", err)
	}
	if dec.More() {
		return nil, invalidf("request has data after its JSON object (binary data needs the %s header)", HeaderLength)
	}
	in, err := decodeInputs(req.Inputs, binary)
	if err != nil {
		return nil, err
	}
	want := make([]string, len(req.Outputs))
	for i, o := range req.Outputs {
		want[i] = o.Name
	}
	e, out, err := s.infer(r.Context(), name, version, in, want)
	if err != nil {
		return nil, err
	}
	allBinary := boolParam(req.Parameters, "binary_data_output")
	binaryOut := make([]bool, len(out))
	for i, o := range out {
		binaryOut[i] = allBinary
		for _, ro := range req.Outputs {
			if ro.Name == o.Name {
				if v, ok := ro.Parameters["binary_data"].(bool); ok {
					binaryOut[i] = v
				}
			}
		}
	}
	return encodeResponse(e.Metadata(), req.ID, out, binaryOut)
}

func boolParam(p map[string]any, name string) bool {
	v, _ := p[name].(bool)
	return v
}

// decodeInputs builds the input tensors from their JSON objects, taking the binary data of
// inputs that have a binary_data_size parameter from binary, in input order.
func decodeInputs(reqs []requestInput, binary []byte) ([]tensor.Tensor, error) {
	if len(reqs) == 0 {
		return nil, invalidf("request has no inputs")
	}
	in := make([]tensor.Tensor, len(reqs))
	for i, ri := range reqs {
		dt, err := tensor.ParseDataType(ri.DataType)
		if err != nil {
			return nil, invalidf("input %q: %v", tensor.Clip(ri.Name), err)
		}
		if ri.Shape == nil {
			return nil, invalidf("input %q has no shape", tensor.Clip(ri.Name))
		}
		if size, ok := ri.Parameters["binary_data_size"]; ok {
			n, ok := size.(float64)
			if !ok || n < 0 || n != float64(int64(n)) || n > float64(len(binary)) {
				return nil, invalidf("input %q: binary_data_size %v does not fit the %d bytes of binary data left", tensor.Clip(ri.Name), size, len(binary))
			}
			if len(ri.Data) > 0 && string(bytes.TrimSpace(ri.Data)) != "null" {
				return nil, invalidf("input %q has both data and binary_data_size", tensor.Clip(ri.Name))
			}
			in[i], err = tensor.DecodeRaw(ri.Name, dt, ri.Shape, binary[:int(n)])
			binary = binary[int(n):]
		} else {
			in[i], err = tensor.DecodeJSON(ri.Name, dt, ri.Shape, ri.Data)
		}
		if err != nil {
			return nil, &invalidError{err.Error()}
		}
	}
	if len(binary) > 0 {
		return nil, invalidf("%d bytes of binary data are left after the inputs that declare binary_data_size", len(binary))
	}
	return in, nil
}

// encodeResponse writes the response object, with the outputs marked binary as binary data
// after it.
func encodeResponse(md model.Metadata, id string, out []tensor.Tensor, binaryOut []bool) (*restResponse, error) {
	var b []byte
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
			return nil, err
		}
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	for _, v := range binaryOut {
		if v {
			return &restResponse{body: append(b, bin...), jsonLen: len(b)}, nil
		}
	}
	return &restResponse{body: b, jsonLen: -1}, nil
}

func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
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
