// Package kserve serves the Open Inference Protocol (KServe v2) over REST (Handler) and gRPC
// (GRPC), as the published specification describes it, plus Triton's binary tensor data
// extension for REST so Triton's HTTP client works unchanged. Both front ends share the
// model registry's checks and its dynamic batcher; errors answer in each protocol's own form
// ({"error": msg} with an HTTP status, or a gRPC status).
package kserve

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"google.golang.org/grpc/codes"

	"github.com/ppml/ppml/serve/metrics"
	"github.com/ppml/ppml/serve/model"
	"github.com/ppml/ppml/serve/tensor"
)

// Extensions the server reports in its metadata.
var Extensions = []string{"binary_tensor_data"}

// Server answers KServe v2 requests for the models of a registry.
type Server struct {
	Registry *model.Registry
	// Name and Version are reported by the server metadata endpoint.
	Name, Version string
	// MaxRequestBytes bounds a request body or message (default 64 MiB).
	MaxRequestBytes int64
	// Metrics, if set, records requests.
	Metrics *metrics.Metrics
}

func (s *Server) maxBytes() int64 {
	if s.MaxRequestBytes > 0 {
		return s.MaxRequestBytes
	}
	return 64 << 20
}

// infer runs one request and returns the outputs the client asked for (all when it named
// none), in the order it asked.
func (s *Server) infer(ctx context.Context, name, version string, in []tensor.Tensor, want []string) (*model.Entry, []tensor.Tensor, error) {
	e, err := s.Registry.Get(name, version)
	if err != nil {
		return nil, nil, err
	}
	md := e.Metadata()
	for i, w := range want {
		if !slices.ContainsFunc(md.Outputs, func(o model.TensorSpec) bool { return o.Name == w }) {
			return e, nil, invalidf("model %q has no output %q", md.Name, tensor.Clip(w))
		}
		if slices.Contains(want[:i], w) {
			return e, nil, invalidf("output %q is requested twice", tensor.Clip(w))
		}
	}
	out, err := e.Infer(ctx, in)
	if err != nil {
		return e, nil, err
	}
	if len(want) == 0 {
		return e, out, nil
	}
	sel := make([]tensor.Tensor, 0, len(want))
	for _, w := range want {
		for _, o := range out {
			if o.Name == w {
				sel = append(sel, o)
			}
		}
	}
	return e, sel, nil
}

type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == model.ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{sprintf(format, args...)}
}

// outcome classifies an error for metrics and status codes.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, model.ErrInvalid):
		return "invalid"
	case errors.Is(err, model.ErrNotFound):
		return "not_found"
	case errors.Is(err, model.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "timeout"
	}
	return "error"
}

func httpStatus(err error) int {
	switch outcome(err) {
	case "invalid":
		return http.StatusBadRequest
	case "not_found":
		return http.StatusNotFound
	case "unavailable":
		return http.StatusServiceUnavailable
	case "timeout":
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

func grpcCode(err error) codes.Code {
	switch outcome(err) {
	case "invalid":
		return codes.InvalidArgument
	case "not_found":
		return codes.NotFound
	case "unavailable":
		return codes.Unavailable
	case "timeout":
		if errors.Is(err, context.Canceled) {
			return codes.Canceled
		}
		return codes.DeadlineExceeded
	}
	return codes.Internal
}
