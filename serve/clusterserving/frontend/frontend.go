// Package frontend is Cluster Serving's HTTP frontend, answered inside the TEE instead of
// relayed through Redis: POST /predict ({"instances": [...]} → {"predictions": [...]}) for
// the job's default model, GET /models[/{name}[/versions/{version}]] for model metadata, and
// POST /models/{name}/versions/{version}/predict for one model version. Errors are
// {"error": msg} with an HTTP status.
//
// Each prediction is, as in BigDL 2.x, a JSON string holding {"value": <JSON string of
// {"data": [...], "shape": [...]}>}: the form its Python client's http_json_to_ndarray
// unwraps. "value" carries the model's first output; an "outputs" member beside it carries
// every output by name.
package frontend

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/ppml/ppml/serve/clusterserving"
	"github.com/ppml/ppml/serve/metrics"
	"github.com/ppml/ppml/serve/model"
	"github.com/ppml/ppml/serve/tensor"
)

// Frontend answers the Cluster Serving HTTP API.
type Frontend struct {
	Registry *model.Registry
	// Model and Version are what POST /predict serves (version "": the default).
	Model, Version string
	// MaxRequestBytes bounds a request body (default 16 MiB).
	MaxRequestBytes int64
	Metrics         *metrics.Metrics
}

// Handler returns the routes.
func (f *Frontend) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "welcome to ppml cluster serving frontend\n")
	})
	mux.HandleFunc("POST /predict", func(w http.ResponseWriter, r *http.Request) {
		f.predict(w, r, f.Model, f.Version)
	})
	mux.HandleFunc("POST /models/{name}/versions/{version}/predict", func(w http.ResponseWriter, r *http.Request) {
		f.predict(w, r, r.PathValue("name"), r.PathValue("version"))
	})
	mux.HandleFunc("GET /models", func(w http.ResponseWriter, r *http.Request) {
		var out []modelInfo
		for _, e := range f.Registry.List() {
			out = append(out, info(e))
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /models/{name}", func(w http.ResponseWriter, r *http.Request) {
		var out []modelInfo
		for _, v := range f.Registry.Versions(r.PathValue("name")) {
			if e, err := f.Registry.Get(r.PathValue("name"), v); err == nil {
				out = append(out, info(e))
			}
		}
		if out == nil {
			writeError(w, http.StatusNotFound, fmt.Errorf("model not found: no model named %q", tensor.Clip(r.PathValue("name"))))
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /models/{name}/versions/{version}", func(w http.ResponseWriter, r *http.Request) {
		e, err := f.Registry.Get(r.PathValue("name"), r.PathValue("version"))
		if err != nil {
			writeError(w, status(err), fmt.Errorf("model not found: %w", err))
			return
		}
		writeJSON(w, http.StatusOK, info(e))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The mux answers unknown paths and methods in plain text; answer in the API's form.
		if _, pattern := mux.Handler(r); pattern == "" {
			code := http.StatusNotFound
			if r.URL.Path == "/predict" || r.URL.Path == "/models" {
				code = http.StatusMethodNotAllowed
			}
			writeError(w, code, fmt.Errorf("no endpoint %s %s", r.Method, tensor.Clip(r.URL.Path)))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// modelInfo is a model's metadata in the frontend's form.
type modelInfo struct {
	Type     string             `json:"type"`
	Name     string             `json:"modelName"`
	Version  string             `json:"modelVersion"`
	Platform string             `json:"modelType"`
	Features []string           `json:"features,omitempty"`
	Inputs   []model.TensorSpec `json:"inputs"`
	Outputs  []model.TensorSpec `json:"outputs"`
}

func info(e *model.Entry) modelInfo {
	md := e.Metadata()
	return modelInfo{Type: "InferenceModelMetaData", Name: md.Name, Version: md.Version, Platform: md.Platform,
		Features: md.Features, Inputs: md.Inputs, Outputs: md.Outputs}
}

func (f *Frontend) predict(w http.ResponseWriter, r *http.Request, name, version string) {
	start := time.Now()
	preds, err := f.run(w, r, name, version)
	f.Metrics.Request("cluster_http", name, outcomeOf(err), time.Since(start))
	if err != nil {
		writeError(w, status(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"predictions": preds})
}

func (f *Frontend) run(w http.ResponseWriter, r *http.Request, name, version string) ([]string, error) {
	limit := f.MaxRequestBytes
	if limit <= 0 {
		limit = 16 << 20
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, invalid(fmt.Errorf("request body is larger than %d bytes", limit))
		}
		return nil, invalid(fmt.Errorf("reading the request: %v", err))
	}
	e, err := f.Registry.Get(name, version)
	if err != nil {
		return nil, err
	}
	insts, err := clusterserving.DecodeInstances(body)
	if err != nil {
		return nil, invalid(fmt.Errorf("wrong content format: %v", err))
	}
	md := e.Metadata()
	preds := make([]string, len(insts))
	for i, inst := range insts {
		in, batched, err := clusterserving.ToInputs(&md, inst)
		if err != nil {
			return nil, invalid(fmt.Errorf("instance %d: %v", i, err))
		}
		out, err := e.Infer(r.Context(), in)
		if err != nil {
			return nil, err
		}
		p, err := prediction(out, batched)
		if err != nil {
			return nil, err
		}
		preds[i] = p
	}
	return preds, nil
}

type ndarray struct {
	Data  []float64 `json:"data"`
	Shape []int64   `json:"shape"`
}

// prediction renders one instance's outputs in the frontend's nested-string form.
func prediction(out []tensor.Tensor, batched clusterserving.Batched) (string, error) {
	all := map[string]string{}
	var first string
	for i, o := range out {
		a := ndarray{Shape: o.Shape, Data: make([]float64, o.Len())}
		if !batched && len(a.Shape) > 0 && a.Shape[0] == 1 {
			a.Shape = a.Shape[1:]
		}
		for j := range a.Data {
			v, err := o.Float64(j)
			if err != nil {
				return "", fmt.Errorf("output %q: %v", o.Name, err)
			}
			a.Data[j] = v
		}
		b, err := json.Marshal(a)
		if err != nil {
			return "", fmt.Errorf("output %q: %v", o.Name, err)
		}
		if i == 0 {
			first = string(b)
		}
		all[o.Name] = string(b)
	}
	b, err := json.Marshal(map[string]any{"value": first, "outputs": all})
	return string(b), err
}

type invalidErr struct{ error }

func (e invalidErr) Is(target error) bool { return target == model.ErrInvalid }
func invalid(err error) error             { return invalidErr{err} }

func outcomeOf(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, model.ErrInvalid):
		return "invalid"
	case errors.Is(err, model.ErrNotFound):
		return "not_found"
	case errors.Is(err, model.ErrUnavailable):
		return "unavailable"
	}
	return "error"
}

func status(err error) int {
	switch outcomeOf(err) {
	case "invalid":
		return http.StatusBadRequest
	case "not_found":
		return http.StatusNotFound
	case "unavailable":
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
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

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}
