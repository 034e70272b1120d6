// Command client is the example's Go client of a ppml serve job: it checks the server's
// attested TLS certificate (the evidence must verify and bind the TLS key; a simulated TEE
// is accepted only with its platform key) and then sends one row over KServe v2 gRPC, or
// through the Cluster Serving queue as an encrypted serving record.
//
//	go run ./examples/serve/client -sim-key ~/.config/ppml/sim/platform.pub grpc 127.0.0.1:8444 0.00632,18,2.31,...
//	go run ./examples/serve/client -record-key record.key queue 127.0.0.1:6390 0.00632,18,2.31,...
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/attest/verifier"
	"github.com/ppml/ppml/serve/attestedtls"
	"github.com/ppml/ppml/serve/clusterserving"
	"github.com/ppml/ppml/serve/clusterserving/queue"
	"github.com/ppml/ppml/serve/kserve/inferencepb"
	"github.com/ppml/ppml/serve/record"
)

func main() {
	simKey := flag.String("sim-key", "", "trust this simulation platform public key (PEM) and accept a simulated TEE")
	recordKey := flag.String("record-key", "", "serving record key file (64 hex digits) for the queue")
	model := flag.String("model", "boston", "model name")
	stream := flag.String("stream", queue.DefaultStream, "queue stream")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: client [flags] grpc HOST:PORT v1,v2,... | queue REDIS_HOST:PORT v1,v2,...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 3 {
		flag.Usage()
		os.Exit(2)
	}
	row, err := parseRow(flag.Arg(2))
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch flag.Arg(0) {
	case "grpc":
		err = viaGRPC(ctx, flag.Arg(1), *simKey, *model, row)
	case "queue":
		err = viaQueue(ctx, flag.Arg(1), *recordKey, *stream, row)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

func parseRow(s string) ([]float32, error) {
	var row []float32
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 32)
		if err != nil {
			return nil, fmt.Errorf("row value %q is not a number", f)
		}
		row = append(row, float32(v))
	}
	return row, nil
}

func viaGRPC(ctx context.Context, addr, simKey, model string, row []float32) error {
	var keys []ed25519.PublicKey
	if simKey != "" {
		k, err := sim.LoadPublicKey(simKey)
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	var peer atomic.Pointer[attestedtls.Peer]
	tc := attestedtls.ClientConfig(verifier.New(verifier.Config{SimKeys: keys}),
		attestedtls.Expect{AllowInsecure: simKey != ""}.Accept, &peer)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := inferencepb.NewGRPCInferenceServiceClient(conn).ModelInfer(ctx, &inferencepb.ModelInferRequest{ModelName: model,
		Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, int64(len(row))},
			Contents: &inferencepb.InferTensorContents{Fp32Contents: row}}}})
	if err != nil {
		return err
	}
	p := peer.Load()
	fmt.Printf("attested: %s, job sha256:%s\n", p.Claims.Platform, hex.EncodeToString(p.JobDigest))
	for _, o := range resp.Outputs {
		fmt.Printf("%s %s %v: %v\n", o.Name, o.Datatype, o.Shape, o.Contents.Fp32Contents)
	}
	return nil
}

func viaQueue(ctx context.Context, addr, keyFile, stream string, row []float32) error {
	if keyFile == "" {
		return errors.New("-record-key is required for the queue (records are encrypted)")
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	secret, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(secret) != record.KeySize {
		return fmt.Errorf("%s: want 64 hex digits", keyFile)
	}
	key, err := record.NewKey(secret)
	if err != nil {
		return err
	}
	req, err := clusterserving.EncodeNdarray("input", row, []int32{int32(len(row))})
	if err != nil {
		return err
	}
	uri := fmt.Sprintf("example-%d", time.Now().UnixNano())
	sealed, err := record.Seal(key, record.Request, stream, uri, req)
	if err != nil {
		return err
	}
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	if err := rc.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"uri", uri, "data", base64.StdEncoding.EncodeToString(sealed)}}).Err(); err != nil {
		return err
	}
	for {
		v, err := rc.HGet(ctx, queue.ResultKey(stream, uri), "value").Result()
		if errors.Is(err, redis.Nil) {
			select {
			case <-ctx.Done():
				return errors.New("no result within 30s: is the serve job running?")
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return err
		}
		if v == queue.NaN {
			return fmt.Errorf("the server answered NaN: see the stream %s:dead-letter for the reason", stream)
		}
		raw, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return err
		}
		plain, err := record.Open(record.Keyring{key}, record.Result, stream, uri, raw)
		if err != nil {
			return fmt.Errorf("the result does not open: %w", err)
		}
		out, err := clusterserving.DecodeResult(plain)
		if err != nil {
			return err
		}
		fmt.Printf("queue result for %s (sealed in Redis, opened here):", uri)
		for _, t := range out {
			fmt.Printf(" %v", t.F32)
		}
		fmt.Println()
		return nil
	}
}
