package servespec

import (
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/job"
)

var specs = job.NewSpecSet(Spec)

const head = "version: 1\nname: t\nengine: serve\ninputs:\n  house: /m/house.json.ppml\n  rk: /m/record.key.ppml\nparameters:\n"

func parse(params string) (*job.Manifest, error) {
	return job.Parse([]byte(head+params), "/", specs)
}

func TestParameters(t *testing.T) {
	m, err := parse("  models: [{name: house, version: '2', input: house, max_batch: 8, max_delay: 2ms}]\n" +
		"  listen: {http: 127.0.0.1:9000, grpc: 'off'}\n  hosts: [serve.example.com, 10.0.0.7]\n  certificate_validity: 1h\n" +
		"  limits: {max_request_bytes: 4096, request_timeout: 1s, max_connections: 10}\n" +
		"  queue: {redis: 'redis:6379', stream: s, record_keys: [rk], claim_idle: 5s, max_deliveries: 2, result_ttl: 1h}\n")
	if err != nil {
		t.Fatal(err)
	}
	p := m.Parameters.(*Params)
	if len(p.Models) != 1 || p.Models[0] != (Model{Name: "house", Version: "2", Input: "house", MaxBatch: 8, MaxDelay: 2 * time.Millisecond}) ||
		p.HTTP != "127.0.0.1:9000" || p.GRPC != "" || strings.Join(p.Hosts, ",") != "serve.example.com,10.0.0.7" || p.Validity != time.Hour ||
		p.PredictModel != "house" || p.Limits.MaxRequestBytes != 4096 || p.Limits.RequestTimeout != time.Second || p.Limits.MaxConnections != 10 ||
		p.Limits.IdleTimeout != DefaultIdleTimeout || p.Queue == nil || p.Queue.Model != "house" || p.Queue.MaxDeliveries != 2 || p.Queue.ResultTTL != time.Hour {
		t.Fatalf("%+v %+v", p, p.Queue)
	}
	// Defaults are explicit in the canonical form: writing them out keeps the digest.
	a, err := parse("  models: [{name: house, input: house}]\n  queue: {redis: 'r:1', record_keys: [rk]}\n")
	if err != nil {
		t.Fatal(err)
	}
	b, err := parse("  models: [{name: house, version: '1', input: house, max_batch: 64, max_delay: 0s}]\n" +
		"  listen: {http: 0.0.0.0:8443, grpc: 0.0.0.0:8444}\n  hosts: [localhost, 127.0.0.1]\n  certificate_validity: 24h\n  predict_model: house\n" +
		"  limits: {max_request_bytes: 67108864, request_timeout: 30s, read_header_timeout: 10s, read_timeout: 60s, write_timeout: 60s, idle_timeout: 120s, max_connections: 4096}\n" +
		"  queue: {redis: 'r:1', stream: serving_stream, model: house, record_keys: [rk], allow_plaintext: false, claim_idle: 30s, max_deliveries: 3, result_ttl: 0s}\n")
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest() != b.Digest() {
		t.Errorf("defaults change the digest:\n%s\n%s", a.Canonical(), b.Canonical())
	}
}

func TestProblems(t *testing.T) {
	for params, want := range map[string]string{
		"":                             "must be a mapping",
		"  listen: {http: x}\n":        "models: required",
		"  models: []\n":               "0 models",
		"  models: [{input: house}]\n": "name: required",
		"  models: [{name: 'a b', input: house}]\n":                                                                 "want 1 to 64 letters",
		"  models: [{name: h}]\n":                                                                                   "input: required",
		"  models: [{name: h, input: nope}]\n":                                                                      `names input "nope"`,
		"  models: [{name: h, input: house}, {name: h, input: rk}]\n":                                               "listed twice",
		"  models: [{name: h, input: house, max_batch: 0}]\n":                                                       "want 1 (no batching)",
		"  models: [{name: h, input: house, max_delay: 2s}]\n":                                                      "want a duration from 0s to 1s",
		"  models: [{name: h, input: house}]\n  listen: {http: 'off', grpc: 'off'}\n":                               "both listeners are off",
		"  models: [{name: h, input: house}]\n  listen: {http: 'example.com:80'}\n":                                 "listen on an IP address",
		"  models: [{name: h, input: house}]\n  predict_model: x\n":                                                 `"x" is not one of the models`,
		"  models: [{name: h, input: house}]\n  queue: {redis: 'r:1'}\n":                                            "record_keys: required unless allow_plaintext",
		"  models: [{name: h, input: house}]\n  queue: {record_keys: [rk]}\n":                                       "redis: required",
		"  models: [{name: h, input: house}]\n  queue: {redis: r, record_keys: [rk]}\n":                             "want host:port",
		"  models: [{name: h, input: house}]\n  queue: {redis: 'r:1', record_keys: [rk], allow_plaintext: maybe}\n": "want true or false",
		"  models: [{name: h, input: house}]\n  limits: {max_request_bytes: 1}\n":                                   "want 1024 to",
		"  models: [{name: h, input: house}]\n  colour: red\n":                                                      "colour",
		"  models: [{name: h, input: house}]\n":                                                                     `input "rk" is neither a model nor a record key`,
	} {
		_, err := parse(params)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", params, err, want)
		}
	}
}

func FuzzServeParameters(f *testing.F) {
	f.Add("  models: [{name: house, input: house}]\n  queue: {redis: 'r:1', record_keys: [rk]}\n")
	f.Add("  models: [{name: h, version: '2', input: house, max_batch: 8, max_delay: 2ms}]\n  listen: {http: 127.0.0.1:9000, grpc: 'off'}\n  limits: {request_timeout: 1s}\n")
	f.Add("  models: [{name: h, input: house}]\n  certificate: {issuer: deployment-ca, policy: alice/serving, role: serve}\n")
	f.Add("  models: [{name: h, input: house, torchscript: {architecture: mlp, hidden: [8, 4], input: {name: x, shape: [3], features: [a, b, c]}, output: {kind: logits, name: y, labels: [no, yes]}}}]\n  queue: {redis: 'r:1', record_keys: [rk]}\n")
	f.Add("  models: [{name: h, input: house, torchscript: {architecture: lenet5, classes: 10, input: {datatype: UINT8, shape: [1, 28, 28]}}}]\n  queue: {redis: 'r:1', record_keys: [rk]}\n")
	f.Fuzz(func(t *testing.T, params string) {
		m, err := parse(params)
		if err == nil {
			m.Canonical()
			m.Digest()
		}
	})
}

// TestCertificateIssuer: the deployment CA is chosen with certificate.issuer and needs a
// policy; the role defaults to serve; the self-signed default leaves the digest of a job as
// it was before the section existed, whether written out or not.
func TestCertificateIssuer(t *testing.T) {
	m, err := parse("  models: [{name: house, input: house}]\n  queue: {redis: 'r:1', record_keys: [rk]}\n" +
		"  certificate: {issuer: deployment-ca, policy: alice/serving}\n")
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Parameters.(*Params).Certificate; c != (Certificate{Issuer: IssuerDeploymentCA, Policy: "alice/serving", Role: DefaultRole}) {
		t.Fatalf("%+v", c)
	}
	explicit, err := parse("  models: [{name: house, input: house}]\n  queue: {redis: 'r:1', record_keys: [rk]}\n" +
		"  certificate: {issuer: deployment-ca, policy: alice/serving, role: serve}\n")
	if err != nil {
		t.Fatal(err)
	}
	if m.Digest() != explicit.Digest() {
		t.Errorf("the default role changes the digest")
	}
	self, err := parse("  models: [{name: house, input: house}]\n  queue: {redis: 'r:1', record_keys: [rk]}\n")
	if err != nil {
		t.Fatal(err)
	}
	if self.Digest() == m.Digest() {
		t.Errorf("the issuer is not in the digest")
	}
	selfExplicit, err := parse("  models: [{name: house, input: house}]\n  queue: {redis: 'r:1', record_keys: [rk]}\n  certificate: {issuer: self}\n")
	if err != nil {
		t.Fatal(err)
	}
	// The digest this job had before the certificate section existed (main at d38399a).
	const before = "sha256:512d0449c130f8f8034b3758af96cfc86b7ea44fb2f60a55c239f1a09e310650"
	if got := self.DigestString(); got != before || selfExplicit.DigestString() != before {
		t.Errorf("digest of a self-certified job: %s and %s (written out), want %s as before", got, selfExplicit.DigestString(), before)
	}
	for params, want := range map[string]string{
		"  certificate: {issuer: acme}\n":                                     `"acme": want self`,
		"  certificate: {issuer: deployment-ca}\n":                            "policy: required for issuer deployment-ca",
		"  certificate: {issuer: deployment-ca, policy: serving}\n":           "want TENANT/NAME",
		"  certificate: {issuer: deployment-ca, policy: a/b, role: Web}\n":    "lower-case letters",
		"  certificate: {policy: alice/serving}\n":                            "only for issuer deployment-ca",
		"  certificate: {issuer: deployment-ca, policy: a/b, lifetime: 1h}\n": "lifetime",
	} {
		_, err := parse("  models: [{name: house, input: house}]\n  queue: {redis: 'r:1', record_keys: [rk]}\n" + params)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", params, err, want)
		}
	}
}

// A TorchScript model without ppml metadata is declared in full: defaults are explicit in the
// canonical form, every field is in the digest, a job without declarations keeps its digest,
// and bad declarations are problems at their field.
func TestTorchScriptDeclaration(t *testing.T) {
	parseModel := func(params string) (*job.Manifest, error) {
		return job.Parse([]byte("version: 1\nname: t\nengine: serve\ninputs:\n  house: /m/house.pt.ppml\nparameters:\n"+params), "/", specs)
	}
	decl := func(d string) string { return "  models: [{name: house, input: house, torchscript: " + d + "}]\n" }
	plain, err := parseModel("  models: [{name: house, input: house}]\n")
	if err != nil {
		t.Fatal(err)
	}
	if plain.Parameters.(*Params).UsesLibtorch() || strings.Contains(string(plain.Canonical()), "torchscript") {
		t.Fatalf("a job without a declaration: %s", plain.Canonical())
	}
	short, err := parseModel(decl("{architecture: mlp, hidden: [16], input: {shape: [4]}, output: {labels: [a, b, c]}}"))
	if err != nil {
		t.Fatal(err)
	}
	long, err := parseModel(decl("{architecture: mlp, classes: 3, hidden: [16], input: {name: input, datatype: FP32, shape: [4]}, output: {kind: log_probabilities, name: output, labels: [a, b, c]}}"))
	if err != nil {
		t.Fatal(err)
	}
	p := short.Parameters.(*Params)
	d := p.Models[0].Declared
	if !p.UsesLibtorch() || d == nil || d.Classes != 3 || d.Config().Inputs != 4 || short.Digest() != long.Digest() {
		t.Fatalf("declaration %+v; canonical forms:\n%s\n%s", d, short.Canonical(), long.Canonical())
	}
	seen := map[string]string{string(short.Canonical()): "base"}
	for _, v := range []string{
		"{architecture: mlp, hidden: [16, 8], input: {shape: [4]}, output: {labels: [a, b, c]}}",
		"{architecture: mlp, hidden: [16], input: {shape: [1, 2, 2]}, output: {labels: [a, b, c]}}",
		"{architecture: mlp, hidden: [16], input: {name: x, shape: [4]}, output: {labels: [a, b, c]}}",
		"{architecture: mlp, hidden: [16], input: {shape: [4], features: [p, q, r, s]}, output: {labels: [a, b, c]}}",
		"{architecture: mlp, hidden: [16], input: {shape: [4]}, output: {kind: logits, labels: [a, b, c]}}",
		"{architecture: mlp, hidden: [16], input: {shape: [4]}, output: {name: y, labels: [a, b, c]}}",
		"{architecture: mlp, hidden: [16], input: {shape: [4]}, output: {labels: [a, c, b]}}",
		"{architecture: mlp, hidden: [16], classes: 3, input: {shape: [4]}}",
		"{architecture: lenet5, classes: 3, input: {shape: [1, 28, 28]}}",
		"{architecture: lenet5, classes: 3, input: {datatype: UINT8, shape: [1, 28, 28]}}",
	} {
		m, err := parseModel(decl(v))
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		c := string(m.Canonical())
		if prev, dup := seen[c]; dup {
			t.Errorf("%s and %s have the same canonical form", v, prev)
		}
		seen[c] = v
	}
	for d, want := range map[string]string{
		"{}": "architecture: required",
		"{architecture: text, classes: 2, input: {shape: [4]}}":                                        "needs its vocabulary",
		"{architecture: resnet}":                                                                       `"resnet": want lenet5, mlp or layers`,
		"{architecture: mlp, classes: 2, input: {shape: [4]}}":                                         "hidden: required for mlp",
		"{architecture: lenet5, classes: 2, hidden: [3], input: {shape: [1, 28, 28]}}":                 "only for architecture mlp",
		"{architecture: lenet5, input: {shape: [1, 28, 28]}}":                                          "classes: required unless output.labels",
		"{architecture: lenet5, classes: 1, input: {shape: [1, 28, 28]}}":                              "1: want 2 to",
		"{architecture: lenet5, classes: 2, input: {shape: [1, 32, 32]}}":                              "lenet5 reads [1, 28, 28]",
		"{architecture: lenet5, classes: 2}":                                                           "input: required",
		"{architecture: mlp, hidden: [], classes: 2, input: {}}":                                       "shape: required",
		"{architecture: mlp, hidden: [], classes: 2, input: {shape: []}}":                              "0 dimensions",
		"{architecture: mlp, hidden: [], classes: 2, input: {shape: [0]}}":                             "dimension must be between 1",
		"{architecture: mlp, hidden: [], classes: 2, input: {shape: [4], datatype: UINT8}}":            "UINT8 is for images",
		"{architecture: mlp, hidden: [], classes: 2, input: {shape: [4], datatype: FP16}}":             `"FP16": want FP32`,
		"{architecture: mlp, hidden: [], classes: 2, input: {shape: [4], features: [a, b]}}":           "2 features for a shape of [4]",
		"{architecture: mlp, hidden: [], classes: 2, input: {shape: [2], features: [a, a]}}":           "listed twice",
		"{architecture: mlp, hidden: [], classes: 2, input: {shape: [2], name: 'a b'}}":                "want 1 to 64 letters",
		"{architecture: mlp, hidden: [], classes: 2, input: {shape: [2]}, output: {kind: softmax}}":    `"softmax": want log_probabilities`,
		"{architecture: mlp, hidden: [], classes: 2, input: {shape: [2]}, output: {name: label}}":      "other than probability, prediction and label",
		"{architecture: mlp, hidden: [], classes: 3, input: {shape: [2]}, output: {labels: [a, b]}}":   "3 classes, but output.labels names 2",
		"{architecture: mlp, hidden: [], input: {shape: [2]}, output: {labels: [a, '']}}":              "is empty",
		"{architecture: mlp, hidden: [], classes: 2, input: {shape: [2], name: y}, output: {name: y}}": `both "y"`,
		"{architecture: mlp, hidden: [], classes: 2, input: {shape: [2]}, extra: 1}":                   "extra",
	} {
		_, err := parseModel(decl(d))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", d, err, want)
		}
	}
}

// models[].backend says which backend must load the file, which the manifest alone cannot
// otherwise tell (it is encrypted): backend torchscript makes the job one on libtorch; it is
// in the digest when given, a declared model's is torchscript (and saying so changes
// nothing), and a job without it keeps its digest.
func TestModelBackend(t *testing.T) {
	parseModel := func(model string) (*job.Manifest, error) {
		return job.Parse([]byte("version: 1\nname: t\nengine: serve\ninputs:\n  lenet: /m/lenet.pt.ppml\nparameters:\n  models: ["+model+"]\n"), "/", specs)
	}
	plain, err := parseModel("{name: m, input: lenet}")
	if err != nil {
		t.Fatal(err)
	}
	ts, err := parseModel("{name: m, input: lenet, backend: torchscript}")
	if err != nil {
		t.Fatal(err)
	}
	tab, err := parseModel("{name: m, input: lenet, backend: tabular}")
	if err != nil {
		t.Fatal(err)
	}
	if plain.Parameters.(*Params).UsesLibtorch() || !ts.Parameters.(*Params).UsesLibtorch() || tab.Parameters.(*Params).UsesLibtorch() {
		t.Fatal("only backend torchscript runs on libtorch")
	}
	if strings.Contains(string(plain.Canonical()), "backend") || plain.Digest() == ts.Digest() || ts.Digest() == tab.Digest() {
		t.Fatalf("digests: %s\n%s", plain.Canonical(), ts.Canonical())
	}
	const decl = "torchscript: {architecture: lenet5, classes: 10, input: {shape: [1, 28, 28]}}"
	d1, err := parseModel("{name: m, input: lenet, " + decl + "}")
	if err != nil {
		t.Fatal(err)
	}
	d2, err := parseModel("{name: m, input: lenet, backend: torchscript, " + decl + "}")
	if err != nil || d1.Digest() != d2.Digest() || !d1.Parameters.(*Params).UsesLibtorch() {
		t.Fatalf("a declared model with and without backend torchscript: %v", err)
	}
	for model, want := range map[string]string{
		"{name: m, input: lenet, backend: pytorch}":               `"pytorch": want torchscript (a dl model`,
		"{name: m, input: lenet, backend: tabular, " + decl + "}": "a model declared with torchscript is served by the torchscript backend",
	} {
		if _, err := parseModel(model); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", model, err, want)
		}
	}
}
