package kserve

import (
	"context"
	"fmt"
	"math"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/ppml/ppml/serve/kserve/inferencepb"
	"github.com/ppml/ppml/serve/tensor"
)

// GRPC returns the gRPC service implementation.
func (s *Server) GRPC() inferencepb.GRPCInferenceServiceServer { return &grpcServer{s: s} }

// ServerOptions are the options a gRPC server serving GRPC needs: message size limits from
// MaxRequestBytes.
func (s *Server) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(int(s.maxBytes())), grpc.MaxSendMsgSize(math.MaxInt32)}
}

type grpcServer struct {
	inferencepb.UnimplementedGRPCInferenceServiceServer
	s *Server
}

func grpcError(err error) error { return status.Error(grpcCode(err), err.Error()) }

func (g *grpcServer) ServerLive(context.Context, *inferencepb.ServerLiveRequest) (*inferencepb.ServerLiveResponse, error) {
	return &inferencepb.ServerLiveResponse{Live: true}, nil
}

func (g *grpcServer) ServerReady(context.Context, *inferencepb.ServerReadyRequest) (*inferencepb.ServerReadyResponse, error) {
	return &inferencepb.ServerReadyResponse{Ready: g.s.Registry.Ready()}, nil
}

func (g *grpcServer) ModelReady(_ context.Context, r *inferencepb.ModelReadyRequest) (*inferencepb.ModelReadyResponse, error) {
	e, err := g.s.Registry.Get(r.Name, r.Version)
	if err != nil {
		return nil, grpcError(err)
	}
	return &inferencepb.ModelReadyResponse{Ready: e.Ready()}, nil
}

func (g *grpcServer) ServerMetadata(context.Context, *inferencepb.ServerMetadataRequest) (*inferencepb.ServerMetadataResponse, error) {
	return &inferencepb.ServerMetadataResponse{Name: g.s.Name, Version: g.s.Version, Extensions: Extensions}, nil
}

func (g *grpcServer) ModelMetadata(_ context.Context, r *inferencepb.ModelMetadataRequest) (*inferencepb.ModelMetadataResponse, error) {
	e, err := g.s.Registry.Get(r.Name, r.Version)
	if err != nil {
		return nil, grpcError(err)
	}
	md := e.Metadata()
	resp := &inferencepb.ModelMetadataResponse{Name: md.Name, Versions: g.s.Registry.Versions(md.Name), Platform: md.Platform}
	for _, t := range md.Inputs {
		resp.Inputs = append(resp.Inputs, &inferencepb.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: string(t.DataType), Shape: t.Shape})
	}
	for _, t := range md.Outputs {
		resp.Outputs = append(resp.Outputs, &inferencepb.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: string(t.DataType), Shape: t.Shape})
	}
	return resp, nil
}

func (g *grpcServer) ModelInfer(ctx context.Context, r *inferencepb.ModelInferRequest) (*inferencepb.ModelInferResponse, error) {
	start := time.Now()
	resp, err := g.modelInfer(ctx, r)
	g.s.Metrics.Request("kserve_grpc", r.ModelName, outcome(err), time.Since(start))
	if err != nil {
		return nil, grpcError(err)
	}
	return resp, nil
}

func (g *grpcServer) modelInfer(ctx context.Context, r *inferencepb.ModelInferRequest) (*inferencepb.ModelInferResponse, error) {
	raw := len(r.RawInputContents) > 0
	if raw && len(r.RawInputContents) != len(r.Inputs) {
		return nil, invalidf("raw_input_contents has %d entries for %d inputs", len(r.RawInputContents), len(r.Inputs))
	}
	if len(r.Inputs) == 0 {
		return nil, invalidf("request has no inputs")
	}
	in := make([]tensor.Tensor, len(r.Inputs))
	for i, ri := range r.Inputs {
		dt, err := tensor.ParseDataType(ri.Datatype)
		if err != nil {
			return nil, invalidf("input %q: %v", tensor.Clip(ri.Name), err)
		}
		if raw {
			if ri.Contents != nil {
				return nil, invalidf("input %q has contents while the request uses raw_input_contents", tensor.Clip(ri.Name))
			}
			in[i], err = tensor.DecodeRaw(ri.Name, dt, ri.Shape, r.RawInputContents[i])
		} else {
			in[i], err = fromContents(ri.Name, dt, ri.Shape, ri.Contents)
		}
		if err != nil {
			return nil, &invalidError{err.Error()}
		}
	}
	want := make([]string, len(r.Outputs))
	for i, o := range r.Outputs {
		want[i] = o.Name
	}
	e, out, err := g.s.infer(ctx, r.ModelName, r.ModelVersion, in, want)
	if err != nil {
		return nil, err
	}
	md := e.Metadata()
	resp := &inferencepb.ModelInferResponse{ModelName: md.Name, ModelVersion: md.Version, Id: r.Id}
	// Answer in the form the client used; FP16 has only the raw form.
	for _, o := range out {
		if o.DataType == tensor.FP16 {
			raw = true
		}
	}
	for _, o := range out {
		ot := &inferencepb.ModelInferResponse_InferOutputTensor{Name: o.Name, Datatype: string(o.DataType), Shape: o.Shape}
		if raw {
			resp.RawOutputContents = append(resp.RawOutputContents, o.AppendRaw(make([]byte, 0, o.RawSize())))
		} else {
			ot.Contents = toContents(o)
		}
		resp.Outputs = append(resp.Outputs, ot)
	}
	return resp, nil
}

// fromContents reads a tensor from the typed contents field of its datatype.
func fromContents(name string, dt tensor.DataType, shape []int64, c *inferencepb.InferTensorContents) (tensor.Tensor, error) {
	t := tensor.Tensor{Name: name, DataType: dt, Shape: shape}
	if c == nil {
		return t, fmt.Errorf("input %q has neither contents nor raw_input_contents", tensor.Clip(name))
	}
	n, err := tensor.NumElements(shape)
	if err != nil {
		return t, fmt.Errorf("input %q: %w", tensor.Clip(name), err)
	}
	field, got := "", 0
	checkInts := func(lo, hi int64) error {
		for i, v := range t.Ints {
			if v < lo || v > hi {
				return fmt.Errorf("input %q: element %d is %d, outside the range of %s", tensor.Clip(name), i, v, dt)
			}
		}
		return nil
	}
	switch dt {
	case tensor.Bool:
		field, got, t.Bools = "bool_contents", len(c.BoolContents), c.BoolContents
	case tensor.Int8, tensor.Int16, tensor.Int32:
		field, got = "int_contents", len(c.IntContents)
		t.Ints = make([]int64, got)
		for i, v := range c.IntContents {
			t.Ints[i] = int64(v)
		}
		lo, hi := int64(math.MinInt32), int64(math.MaxInt32)
		if dt == tensor.Int8 {
			lo, hi = math.MinInt8, math.MaxInt8
		} else if dt == tensor.Int16 {
			lo, hi = math.MinInt16, math.MaxInt16
		}
		if err := checkInts(lo, hi); err != nil {
			return t, err
		}
	case tensor.Int64:
		field, got, t.Ints = "int64_contents", len(c.Int64Contents), c.Int64Contents
	case tensor.Uint8, tensor.Uint16, tensor.Uint32:
		field, got = "uint_contents", len(c.UintContents)
		hi := uint64(math.MaxUint32)
		if dt == tensor.Uint8 {
			hi = math.MaxUint8
		} else if dt == tensor.Uint16 {
			hi = math.MaxUint16
		}
		t.Uints = make([]uint64, got)
		for i, v := range c.UintContents {
			if uint64(v) > hi {
				return t, fmt.Errorf("input %q: element %d is %d, outside the range of %s", tensor.Clip(name), i, v, dt)
			}
			t.Uints[i] = uint64(v)
		}
	case tensor.Uint64:
		field, got, t.Uints = "uint64_contents", len(c.Uint64Contents), c.Uint64Contents
	case tensor.FP32:
		field, got, t.F32 = "fp32_contents", len(c.Fp32Contents), c.Fp32Contents
	case tensor.FP64:
		field, got, t.F64 = "fp64_contents", len(c.Fp64Contents), c.Fp64Contents
	case tensor.Bytes:
		field, got, t.Bytes = "bytes_contents", len(c.BytesContents), c.BytesContents
	case tensor.FP16:
		return t, fmt.Errorf("input %q: FP16 tensors travel only in raw_input_contents", tensor.Clip(name))
	}
	if got != n {
		return t, fmt.Errorf("input %q: shape %v holds %d elements, %s has %d", tensor.Clip(name), shape, n, field, got)
	}
	return t, nil
}

// toContents puts a tensor's elements in the typed contents field of its datatype.
func toContents(t tensor.Tensor) *inferencepb.InferTensorContents {
	c := &inferencepb.InferTensorContents{}
	switch t.DataType {
	case tensor.Bool:
		c.BoolContents = t.Bools
	case tensor.Int8, tensor.Int16, tensor.Int32:
		c.IntContents = make([]int32, len(t.Ints))
		for i, v := range t.Ints {
			c.IntContents[i] = int32(v)
		}
	case tensor.Int64:
		c.Int64Contents = t.Ints
	case tensor.Uint8, tensor.Uint16, tensor.Uint32:
		c.UintContents = make([]uint32, len(t.Uints))
		for i, v := range t.Uints {
			c.UintContents[i] = uint32(v)
		}
	case tensor.Uint64:
		c.Uint64Contents = t.Uints
	case tensor.FP32:
		c.Fp32Contents = t.F32
	case tensor.FP64:
		c.Fp64Contents = t.F64
	case tensor.Bytes:
		c.BytesContents = t.Bytes
	}
	return c
}
