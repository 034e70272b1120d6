package serve_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/attest/verifier"
	_ "github.com/ppml/ppml/engine/serve"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/envelope/envelopetest"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/launcher"
	"github.com/ppml/ppml/ml/xgboost"
	"github.com/ppml/ppml/serve/attestedtls"
	"github.com/ppml/ppml/serve/clusterserving"
	"github.com/ppml/ppml/serve/clusterserving/queue"
	"github.com/ppml/ppml/serve/kserve/inferencepb"
	"github.com/ppml/ppml/serve/record"
	"github.com/ppml/ppml/serve/servetest"
)

const features = 4

// syncBuffer is the launcher's log, written from the engine's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type job struct {
	dir       string
	manifest  string
	recordKey []byte
	model     []byte
	x         []float32
	simPub    ed25519.PublicKey
	att       *sim.Attester
	http      string
	grpc      string
	redis     *servetest.Redis
}

// newJob writes an encrypted XGBoost model and record key and a serve manifest for them.
func newJob(t *testing.T, extra string) *job {
	j := &job{dir: t.TempDir()}
	k, err := keyfile.Generate(filepath.Join(j.dir, "owner.key"), false)
	servetest.Must(t, err)
	j.model, j.x = servetest.XGBoostModel(t, features, 10, 3)
	envelopetest.Encrypt(t, filepath.Join(j.dir, "model.json.ppml"), k.LocalKey, j.model, envelope.TypeModel)
	j.recordKey = make([]byte, 32)
	rand.Read(j.recordKey)
	envelopetest.Encrypt(t, filepath.Join(j.dir, "record.key.ppml"), k.LocalKey, []byte(hex.EncodeToString(j.recordKey)+"\n"), envelope.TypeBytes)
	j.redis = servetest.StartRedis(t)
	j.http = "127.0.0.1:" + strconv.Itoa(servetest.FreePort(t))
	j.grpc = "127.0.0.1:" + strconv.Itoa(servetest.FreePort(t))
	j.manifest = filepath.Join(j.dir, "job.yaml")
	os.WriteFile(j.manifest, []byte(fmt.Sprintf(`version: 1
name: serve-test
engine: serve
inputs:
  house: model.json.ppml
  record_key: record.key.ppml
parameters:
  models:
    - {name: house, version: "3", input: house, max_batch: 16}
  listen: {http: "%s", grpc: "%s"}
  hosts: [127.0.0.1]
  queue: {redis: "%s", record_keys: [record_key], claim_idle: 2s}
%s`, j.http, j.grpc, j.redis.Addr(), extra)), 0o644)
	j.simulateTEE(t)
	return j
}

// simulateTEE gives j a simulated TEE whose measured runtime is a stand-in file in j.dir
// (j.att), and the simulated platform's public key (j.simPub) for checking its evidence.
func (j *job) simulateTEE(t *testing.T) {
	t.Helper()
	exe := filepath.Join(j.dir, "runtime")
	servetest.Must(t, os.WriteFile(exe, []byte("serving runtime"), 0o755))
	j.att = &sim.Attester{Dir: filepath.Join(j.dir, "sim"), Executable: exe}
	_, err := j.att.Evidence(context.Background(), [64]byte{})
	servetest.Must(t, err)
	j.simPub, err = sim.LoadPublicKey(filepath.Join(j.att.Dir, sim.PlatformPubKeyFile))
	servetest.Must(t, err)
}

func (j *job) start(t *testing.T, cfg launcher.Config) (context.CancelFunc, chan error, *launcher.Manifest) {
	m, err := launcher.Load(j.manifest)
	servetest.Must(t, err)
	if cfg.Keys == nil {
		keys, err := launcher.NewLocalKeys(filepath.Join(j.dir, "owner.key"))
		servetest.Must(t, err)
		cfg.Keys = keys
	}
	cfg.Manifest = m
	ctx, cancel := context.WithCancel(context.Background())
	done, finished := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(finished)
		_, err := launcher.Run(ctx, cfg)
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(20 * time.Second):
			t.Error("the job did not end within 20s of its stop")
		}
	})
	return cancel, done, m
}

func (j *job) clientTLS(peer *atomic.Pointer[attestedtls.Peer]) (*http.Client, *grpc.ClientConn, error) {
	v := verifier.New(verifier.Config{SimKeys: []ed25519.PublicKey{j.simPub}})
	tc := attestedtls.ClientConfig(v, attestedtls.Expect{AllowInsecure: true}.Accept, peer)
	conn, err := grpc.NewClient(j.grpc, grpc.WithTransportCredentials(credentials.NewTLS(tc.Clone())))
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc.Clone()}}, conn, err
}

// TestServeJob runs a serve job through the launcher with local keys and a simulated TEE:
// the model and record key are decrypted in memory; a client checks the attested
// certificate names this job, then queries KServe REST, gRPC, /predict and the encrypted
// queue; stopping the job drains and ends the run without error.
func TestServeJob(t *testing.T) {
	j := newJob(t, "")
	log := &syncBuffer{}
	cancel, done, m := j.start(t, launcher.Config{Attester: j.att, Log: log, Grace: 10 * time.Second})
	var peer atomic.Pointer[attestedtls.Peer]
	hc, gconn, err := j.clientTLS(&peer)
	servetest.Must(t, err)
	defer gconn.Close()

	base := "https://" + j.http
	deadline := time.Now().Add(30 * time.Second) // also bounds the queue's answer below
	waitReady(t, hc, base, done, log, time.Until(deadline))
	digest := m.Job.Digest()
	if p := peer.Load(); p == nil || !bytes.Equal(p.JobDigest, digest[:]) {
		t.Fatalf("the certificate names job %x, want %x", p.JobDigest, digest)
	}

	// XGBoost's own prediction of row 0.
	b, err := xgboost.LoadJSON(j.model, 1)
	servetest.Must(t, err)
	d, err := xgboost.NewDMatrix(j.x[:features], 1, features, 1)
	servetest.Must(t, err)
	pred, err := b.Predict(d)
	servetest.Must(t, err)
	want := pred.Values
	d.Close()
	b.Close()
	row, _ := json.Marshal(j.x[:features])

	resp, err := hc.Post(base+"/v2/models/house/versions/3/infer", "application/json",
		strings.NewReader(`{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":`+string(row)+`}]}`))
	servetest.Must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var kr struct {
		Outputs []struct {
			Name string
			Data []float32
		}
	}
	if err := json.Unmarshal(body, &kr); resp.StatusCode != 200 || err != nil || len(kr.Outputs) != 1 || kr.Outputs[0].Data[0] != want[0] {
		t.Fatalf("KServe REST: %d %s, want %v", resp.StatusCode, body, want[0])
	}

	gr, err := inferencepb.NewGRPCInferenceServiceClient(gconn).ModelInfer(context.Background(), &inferencepb.ModelInferRequest{ModelName: "house",
		Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, features},
			Contents: &inferencepb.InferTensorContents{Fp32Contents: j.x[:features]}}}})
	servetest.Must(t, err)
	if got := gr.Outputs[0].Contents.Fp32Contents; len(got) != 1 || got[0] != want[0] {
		t.Fatalf("gRPC: %v, want %v", got, want[0])
	}

	resp, err = hc.Post(base+"/predict", "application/json", strings.NewReader(`{"instances":[{"input":`+string(row)+`}]}`))
	servetest.Must(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "predictions") {
		t.Fatalf("/predict: %d %s", resp.StatusCode, body)
	}

	// The queue: an encrypted request, an encrypted result.
	key, err := record.NewKey(j.recordKey)
	servetest.Must(t, err)
	arrowReq, err := clusterserving.EncodeNdarray("input", j.x[:features], []int32{features})
	servetest.Must(t, err)
	sealed, err := record.Seal(key, record.Request, queue.DefaultStream, "req-1", arrowReq)
	servetest.Must(t, err)
	rc := j.redis.Client(t)
	ctx := context.Background()
	servetest.Must(t, rc.XAdd(ctx, &redis.XAddArgs{Stream: queue.DefaultStream, Values: []any{"uri", "req-1", "data", base64.StdEncoding.EncodeToString(sealed)}}).Err())
	var val string
	for time.Now().Before(deadline) {
		if val, err = rc.HGet(ctx, queue.ResultKey(queue.DefaultStream, "req-1"), "value").Result(); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	raw, err := base64.StdEncoding.DecodeString(val)
	servetest.Must(t, err)
	plain, err := record.Open(record.Keyring{key}, record.Result, queue.DefaultStream, "req-1", raw)
	if err != nil {
		t.Fatalf("queue result %q: %v", val, err)
	}
	out, err := clusterserving.DecodeResult(plain)
	servetest.Must(t, err)
	if len(out) == 0 || len(out[0].F32) != 1 || out[0].F32[0] != want[0] {
		t.Fatalf("queue result %+v, want %v", out, want[0])
	}

	resp, err = hc.Get(base + "/metrics")
	servetest.Must(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, w := range []string{`ppml_serve_requests_total{model="house",outcome="ok",protocol="kserve_rest"} 1`, `protocol="queue"`, "ppml_serve_queue_pending"} {
		if !strings.Contains(string(body), w) {
			t.Errorf("/metrics lacks %s", w)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stopping the job: %v\n%s", err, log)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the job did not drain\n%s", log)
	}
	if strings.Contains(log.String(), hex.EncodeToString(j.recordKey)) {
		t.Fatal("the record key is in the log")
	}
	if !strings.Contains(log.String(), "drained") {
		t.Errorf("log:\n%s", log)
	}
}

// TestServeJobRefusals: no TEE to attest with, a model that is not a model, and manifest
// parameters that do not fit; each fails before serving, naming the problem.
func TestServeJobRefusals(t *testing.T) {
	j := newJob(t, "")
	_, done, _ := j.start(t, launcher.Config{})
	if err := <-done; err == nil || !strings.Contains(err.Error(), "no TEE to attest") {
		t.Fatalf("without an attester: %v", err)
	}

	k, err := keyfile.Load(filepath.Join(j.dir, "owner.key"))
	servetest.Must(t, err)
	envelopetest.Encrypt(t, filepath.Join(j.dir, "model.json.ppml"), k.LocalKey, []byte(`{"not":"a model"}`), envelope.TypeModel)
	_, done, _ = j.start(t, launcher.Config{Attester: j.att})
	if err := <-done; err == nil || !strings.Contains(err.Error(), "model house version 3 (input house)") {
		t.Fatalf("a bad model: %v", err)
	}

	for extra, want := range map[string]string{
		"outputs:\n  x: {path: x.ppml, key: file:owner.key}\n": "a serve job writes no outputs",
	} {
		j := newJob(t, extra)
		if _, err := launcher.Load(j.manifest); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v", extra, err)
		}
	}
}
