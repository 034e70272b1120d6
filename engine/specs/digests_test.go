package specs_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ppml/ppml/engine/specs"
	"github.com/ppml/ppml/engine/sql/sqlspec"
	"github.com/ppml/ppml/job"
)

// repoRoot is the module root, two levels up.
const repoRoot = "../.."

// pinned are the digests of every job manifest in the repository, taken
// before the engines moved to one package each with a pure-Go spec
// (issue 10). A refactoring of the parsers must not change a job's identity:
// owners pinned these digests in their key policies. The dl engine's
// (examples/dl, examples/pytorch-lenet, inline:dl-*) were added when it
// joined the contract; inline:ml-distributed when ml jobs could train on
// several workers (the digests of one-worker ml jobs did not change);
// examples/pytorch-lenet/serve.yaml when serve jobs could declare a
// TorchScript model (the digests of serve jobs without one did not change).
var pinned = map[string]string{
	"examples/dl/lenet/evaluate.yaml":                   "sha256:a7f60cfe29ae69736a86d2302c3dd3202e6f6a861574b461664229ffbb9eaeb7",
	"examples/dl/lenet/predict.yaml":                    "sha256:d4fe5b328982e8b0ae78f1fa4b0e95b35fd6cf4fe72d543da37bb860ddff16c5",
	"examples/dl/lenet/serve.yaml":                      "sha256:bb100e22514abe522560bc0f4896dee50f3f2c5c348f63385c4be39bd9320174",
	"examples/dl/lenet/train.yaml":                      "sha256:d6607ebef950867c64b5f672e98e5d5013f6ec2b6dbccb888e63a83dae6e1af1",
	"examples/dl/text/evaluate.yaml":                    "sha256:812344b373a22e9e72e64e6152befa927c83611793a45782a82128b6c3209701",
	"examples/dl/text/train.yaml":                       "sha256:ec8383f2c09b947f0db9867062789cf5a9758c61df26b74cee0ba9a8e98850ef",
	"examples/pytorch-lenet/evaluate.yaml":              "sha256:d939aa32d135a18d9c123ca72106bbb862404cc454ebfa5561fd170037f97840",
	"examples/pytorch-lenet/job.yaml":                   "sha256:ee34fbab6032eb8b72105b928ad047f3819e69f72b61569bfc963bad7a521bc5",
	"examples/pytorch-lenet/serve.yaml":                 "sha256:5fac35a919d93506c16800b7c23941d167d780a1d93931c2fc8908d24b9c5b89",
	"inline:dl-evaluate":                                "sha256:fa272cf833377a5af7f61191fd39801be9c56d02ddba0a1a29816250134439f1",
	"inline:dl-mlp-table":                               "sha256:798719548f140db9227ee9fb5d95220aed94ea9f5e36504c0d245ff47205900c",
	"inline:dl-predict":                                 "sha256:4f9113c60ed8c2baf89568e5b989fe41f2f08030f74c1080c01a30e64d679a1a",
	"inline:dl-text":                                    "sha256:58e4d0485637a5098d39f86db6f0721d23342392d377ce4fc59d5de4328cc889",
	"inline:dl-train-defaults":                          "sha256:709fdd1592c13fd81be088fd52fed0fc75f0cd7fb1ccdaa085289400eb42acdc",
	"inline:dl-lr-schedule":                             "sha256:aacde133e2a9edd4b9ba0a3039389e7e6c554e18bd478d0fec79f073a047f443",
	"inline:dl-train-every-parameter":                   "sha256:efce2d17804b176db1282bc7255daf209c896c80f258ba4f6288c74ffd9c583f",
	"examples/ml/boston-linear-regression.yaml":         "sha256:deec8b289dd723a6db0ccaa42f87ec7c461b7b1f5d229e4c83052095a704097b",
	"examples/ml/boston-xgboost-evaluate.yaml":          "sha256:294fb4434a745535edf61b7f93f5cdf4aaccef31245ac358b43265583a646e12",
	"examples/ml/boston-xgboost-predict.yaml":           "sha256:bbcf9b714b047be93b5da176b570eb457ba9a20ea8d0556cd617239c827a909b",
	"examples/ml/boston-xgboost-regressor.yaml":         "sha256:660b0111ec72c8af06f2f56d0a5604e93cd2d6ddd63313a04b70f3a62d9e0b6d",
	"examples/ml/breast-cancer-random-forest.yaml":      "sha256:a9cdcf6a43ac52d005f7f9c78e0d67c1435068d53791dbc43499b527961f30af",
	"examples/ml/breast-cancer-xgboost-classifier.yaml": "sha256:a7ed971712449074890a0f893c776ceb18da68c0cec61f48ae3945e3610b5c02",
	"examples/python-hello/job.yaml":                    "sha256:eaf46b26e0a3225dfbeb9bec5a0610282745faf1bc93110b525d6941a7626963",
	"examples/python-numpy/job.yaml":                    "sha256:3cb9162f5fa3980e841e34bb436a02a8295d9773a23ea3464e7dca712f0028fe",
	"examples/sql/orca-data/job.yaml":                   "sha256:a7fb4e62c2aac6da58f92d7b8d9c77e30ec3242891ffd66f59e54c2ec7152f09",
	"examples/sql/pi/job.yaml":                          "sha256:c2305e797a53294cdcb9f121f08eb8b61fe8a06ff50cdbb5fcb145aa994b4e45",
	"examples/sql/spark-basic/job.yaml":                 "sha256:c1fdb8b82f8101023cc2afa20dfcc387f43c6bea37d4d58d0f4f0b95933d13a4",
	"examples/sql/wordcount/job.yaml":                   "sha256:d1d52d0242c995fe2295af3982ee47a6ed62fdee54c3d96109be0b951c97d4c1",
	"examples/stream/earthquakes/job.yaml":              "sha256:92651d42f56b45f201540104d4083317538dee0e4ab837007039dfb81ba013a2",
	"examples/stream/live/job.yaml":                     "sha256:5501e57f1520afb2cd289ee76ab27498240c8c67a46af7c69abc1a61d0d50830",
	"examples/stream/wordcount/job.yaml":                "sha256:f454cb8c9d0455a63d8327f5a17204af88a61d762b8e266e55e438179ecab484",
	"gramine/testdata/python-job.yaml":                  "sha256:bfb9e55d8ef1dc6a4fc7fd8e5e10dc27edef3cfdf2b3294debfe5156732108dd",
	"inline:exec-defaults":                              "sha256:ef46573effdd379a22863cea7fba71f4edfc278531315105b230b504c1a72daf",
	"inline:exec-every-parameter":                       "sha256:146e1ad67ba6fa960329fa565b78db24fd9b3e1261f10d1202ec83994e561a17",
	"inline:ml-distributed":                             "sha256:c2f7de5c8d004b96b922ecce64ea84f16f7de2cf56639d56342110db988ea296",
	"inline:ml-evaluate":                                "sha256:c2f8e187997e57edb0dc88635f9f5c541dce47dedf8a183eb37b35600eb9d4ca",
	"inline:ml-forest":                                  "sha256:8564915d9e815a5a28e465f91c30a3d01adf037449f4fa77b76a2d375b981c22",
	"inline:ml-logistic":                                "sha256:a9a9db9e06f379f2c9407dc99a1b8d35f05b498b6ee7b92bd17a10f0b0f2b485",
	"inline:ml-predict":                                 "sha256:c9d573522a68e20947f190427a2782421eb37f02800d49d23f3088d1eb8f6c2d",
	"inline:ml-train-defaults":                          "sha256:d3aaa7dba992a42d05eb1473cee730c4fe5d7446cb8f90a64f6abd2329d54e88",
	"inline:ml-train-every-parameter":                   "sha256:888cd02c9a173c2be7daec4beda555d43a6e638326077b0ce2f9e2c88b6e8174",
	"examples/serve/serve.yaml":                         "sha256:865367315987bebc525290e3b6327aa5e2098bc5ccb5eb67aa344ecdcd73179a",
	"examples/serve/train.yaml":                         "sha256:419c97f95532d6e9621cc4d88892ae17efc6cc590c22c71e363a909ba68e60ed",
	"inline:serve-defaults":                             "sha256:2356b2023e1d5f6fe1a80d932f83d81acc402ca825bcab0b209aaa2755372637",
	"inline:serve-every-parameter":                      "sha256:2718a0b791a5eb53c40a81375c7a49a2c14a4344ea68fc89e47f2ca7cc9748c1",
	"inline:sql-every-parameter":                        "sha256:2fb8aef9bd40b7bc079bc612b5756700abd61093d903dccb69b41096d6fe7805",
	"inline:sql-interactive":                            "sha256:453a4e55d45c59fc10269396ef05f05ed43388299c2cd1f06fad9e22c727b063",
	"inline:sql-parquet-encryption":                     "sha256:cd91c1fa323a190d9dda5a3661cb8d4e2ac41cf4f4b6f37327719242222f42ea",
	"inline:stream-bounded-select":                      "sha256:667af03912a07d4c8ea0ebe5991a59c69e74b2a04569712861c98beeb4ed2bb4",
	"inline:stream-every-parameter":                     "sha256:7514f44b918c00fe6c222d762e8b295223dc22ffa342643ff3c52573bde1b5c5",
	"job/testdata/golden-reformatted.yaml":              "sha256:8be92578dfcc9dedf9186f3571348f94a6cba0546fb07020a56bfa4098f53467",
	"job/testdata/golden.yaml":                          "sha256:8be92578dfcc9dedf9186f3571348f94a6cba0546fb07020a56bfa4098f53467",
	"ppml-sql:format-resources":                         "sha256:10b759b869c1f8024ac66897920447bab936e043e4431929b26336faf097634a",
	"ppml-sql:interactive":                              "sha256:f815c88aa8c107279f09c9e94914ad007c155af6acb95e99a4782356960080be",
	"ppml-sql:query":                                    "sha256:45265f06580243f35917334d5ae9a884fa882f3a89a49e37205380fb9f8caeeb",
}

// inline manifests exercise every parameter of every engine, defaults
// included, beyond what the examples use.
var inline = map[string]string{
	"exec-every-parameter": `name: exec-all
engine: exec
inputs:
  data: {path: d.csv.ppml, key: "kms://keys.example.org:8443/owner.data@3"}
  dir: in/
outputs:
  result: {path: out/r.json.ppml, key: "file:keys/owner.key", content_type: "application/json; charset=utf-8"}
parameters:
  command: [python3, /opt/job/run.py, --flag, "two words"]
  env: [HOME, LANG=C.UTF-8, OMP_NUM_THREADS=1]
  workdir: /srv/work
  files: [{path: /opt/job/run.py, sha256: "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"}]
resources: {memory: 512MiB, threads: 2}
`,
	"exec-defaults":  "name: e\nengine: exec\nparameters: {command: [/bin/true]}\n",
	"serve-defaults": "name: s\nengine: serve\ninputs:\n  m: m.ppml\nparameters: {models: [{name: m, input: m}]}\n",
	"serve-every-parameter": `name: serve-all
engine: serve
inputs:
  a: a.model.ppml
  b: b.model.ppml
  rk: record.key.ppml
parameters:
  models:
    - {name: house, version: "2", input: a, max_batch: 32, max_delay: 2ms}
    - {name: churn, version: "7", input: b, max_batch: 1}
  listen: {http: "0.0.0.0:9443", grpc: "off"}
  hosts: [serve.example.org, 10.0.0.7]
  certificate_validity: 12h
  predict_model: churn
  limits: {max_request_bytes: 1048576, request_timeout: 5s, read_header_timeout: 2s, read_timeout: 10s, write_timeout: 10s, idle_timeout: 60s, max_connections: 100}
  queue: {redis: "redis.example.org:6379", stream: house_stream, model: house, record_keys: [rk], allow_plaintext: false, claim_idle: 10s, max_deliveries: 5, result_ttl: 1h}
resources: {threads: 2}
`,
	"sql-every-parameter": `name: sql-all
engine: sql
inputs:
  people: people.json.ppml
  events: {path: ev.parquet, key: "file:k"}
  lines: logs/
outputs:
  adults: {path: out/adults.csv.ppml, key: "local:0123456789abcdef0123456789abcdef"}
  stats: {path: out/stats.ppml, key: "file:k", content_type: application/vnd.apache.parquet}
  rows: {path: out/rows.jsonl.ppml, key: "file:k"}
parameters:
  setup: "CREATE TEMP VIEW a AS SELECT * FROM people WHERE age >= 18;"
  outputs:
    adults: {query: "SELECT name FROM a"}
    stats: {query: "SELECT count(*) AS n FROM events"}
    rows: {query: "SELECT line FROM lines", format: json}
  print: ["SELECT count(*) FROM a", "SELECT 1; SELECT 2"]
  interactive: false
  tables:
    people: {format: json, materialize: true}
    lines: {format: text}
resources: {memory: 2GiB, threads: 8}
`,
	"sql-parquet-encryption": `name: sql-pme
engine: sql
inputs:
  t: t.parquet
outputs:
  o: {path: o.csv.ppml, key: "file:k"}
parameters:
  query: "SELECT * FROM t"
  tables:
    t:
      parquet_encryption:
        footer_key: keys/footer.key.ppml
        column_keys: {a: keys/a.key.ppml, b.c: keys/bc.key.ppml}
        key_ids: {kf: keys/footer.key.ppml}
        aad_prefix: "tenant-1"
`,
	"sql-interactive": "name: s\nengine: sql\ninputs: {t: t.ppml}\nparameters: {interactive: true}\n",
	"ml-train-every-parameter": `name: ml-all
engine: ml
inputs:
  raw: raw.csv.ppml
  extra: extra.parquet.ppml
outputs:
  model: {path: out/m.ppml, key: "file:k"}
  report: {path: out/r.ppml, key: "file:k", content_type: application/json}
parameters:
  task: train
  algorithm: xgboost
  objective: multiclass
  features: [a, b, c]
  label: y
  params: {max_depth: 6, eta: "0.1", num_class: 3, subsample: 0.8}
  rounds: 250
  test_fraction: 0.25
  seed: 18446744073709551615
  query: "SELECT a, b, c, y FROM raw JOIN extra USING (id)"
resources: {memory: 4GiB, threads: 2}
`,
	"ml-train-defaults": "name: m\nengine: ml\ninputs: {train: t.ppml}\noutputs: {model: {path: m.ppml, key: \"file:k\"}}\nparameters: {task: train, algorithm: xgboost, objective: binary, label: y}\n",
	"ml-distributed":    "name: m\nengine: ml\ninputs: {train: parts/}\noutputs: {model: {path: m.ppml, key: \"file:k\"}}\nparameters: {task: train, algorithm: xgboost, objective: binary, label: y, test_fraction: 0, workers: 3, certificate_policy: alice/xgb-train}\n",
	"ml-forest":         "name: m\nengine: ml\ninputs: {data: t.ppml}\noutputs: {model: {path: m.ppml, key: \"file:k\"}}\nparameters: {task: train, algorithm: random_forest, objective: regression, label: y, params: {num_parallel_tree: 50}, test_fraction: 0}\n",
	"ml-logistic":       "name: m\nengine: ml\ninputs: {train: t.ppml}\noutputs: {model: {path: m.ppml, key: \"file:k\"}}\nparameters: {task: train, algorithm: logistic_regression, label: y, features: all_except_label, params: {l2: 0.5, max_iterations: 200}}\n",
	"ml-predict":        "name: p\nengine: ml\ninputs: {model: m.ppml, data: d.ppml}\noutputs: {predictions: {path: p.parquet.ppml, key: \"file:k\"}}\nparameters: {task: predict, features: [a, b]}\n",
	"dl-train-every-parameter": `name: dl-all
engine: dl
inputs:
  images: train-images-idx3-ubyte.gz.ppml
  labels: train-labels-idx1-ubyte.gz.ppml
  test_images: t10k-images-idx3-ubyte.gz.ppml
  test_labels: t10k-labels-idx1-ubyte.gz.ppml
outputs:
  model: {path: out/m.pt.ppml, key: "file:k"}
  state_dict: {path: out/s.pt.ppml, key: "file:k"}
  report: {path: out/r.json.ppml, key: "file:k", content_type: application/json}
parameters:
  task: train
  model: lenet5
  optimizer: sgd
  learning_rate: 0.01
  momentum: 0.5
  weight_decay: 0.0001
  epochs: 7
  batch_size: 32
  seed: 18446744073709551615
  classes: 12
resources: {memory: 2GiB, threads: 2}
`,
	"dl-train-defaults": "name: d\nengine: dl\ninputs: {images: i.ppml, labels: l.ppml}\noutputs: {model: {path: m.ppml, key: \"file:k\"}}\nparameters: {task: train, model: lenet5}\n",
	"dl-mlp-table":      "name: d\nengine: dl\ninputs: {train: t.csv.ppml}\noutputs: {model: {path: m.ppml, key: \"file:k\"}}\nparameters: {task: train, model: mlp, optimizer: adam, hidden: [64, 32], features: [a, b], label: y, test_fraction: 0.25}\n",
	"dl-text":           "name: d\nengine: dl\ninputs: {data: t.parquet.ppml}\noutputs: {model: {path: m.ppml, key: \"file:k\"}}\nparameters: {task: train, model: text, vocab_size: 500, embedding_dim: 16, max_tokens: 32, text: body, label: spam}\n",
	"dl-lr-schedule":    "name: d\nengine: dl\ninputs: {images: i.ppml, labels: l.ppml}\noutputs: {model: {path: m.ppml, key: \"file:k\"}}\nparameters: {task: train, model: lenet5, optimizer: adam, learning_rate: 0.003, lr_step_epochs: 2, lr_gamma: 0.3}\n",
	"dl-predict":        "name: p\nengine: dl\ninputs: {model: m.ppml, images: i.ppml}\noutputs: {predictions: {path: p.csv.ppml, key: \"file:k\"}}\nparameters: {task: predict, batch_size: 256}\n",
	"dl-evaluate":       "name: v\nengine: dl\ninputs: {model: m.ppml, data: d.csv.ppml}\noutputs: {report: {path: r.ppml, key: \"file:k\"}}\nparameters: {task: evaluate, model: mlp, label: y}\n",
	"ml-evaluate":       "name: v\nengine: ml\ninputs: {model: m.ppml, data: d.ppml}\noutputs: {report: {path: r.ppml, key: \"file:k\"}}\nparameters: {task: evaluate, label: y}\n",
	"stream-every-parameter": `name: stream-all
engine: stream
parameters:
  log: {kind: kafka, url: "kafka-1:9092,kafka-2:9092", worker: w1}
  source: {stream: payments, partitions: 8, format: csv, columns: [ts, merchant, amount, status, card, note]}
  event_time: {field: ts, unit: rfc3339, max_out_of_orderness: 30s, idle_timeout: 1m}
  filter:
    - {field: status, eq: settled}
    - {field: amount, gt: 0}
    - {field: merchant, in: [m1, m2, m3]}
  tokenize: {field: note, as: word}
  key_by: [merchant, word]
  window: {sliding: 10m, every: 1m}
  allowed_lateness: 1m
  aggregate:
    payments: count
    total: {sum: amount}
    smallest: {min: amount}
    largest: {max: amount}
    average: {mean: amount}
    cards: {distinct_count: card}
  sink: {stream: merchant-10m, partitions: 4, dead_letter: payments-dead, late: payments-late}
  checkpoint_interval: 5s
  keys: {source: keys/payments.key.ppml, sink: keys/results.key.ppml, state: keys/state.key.ppml}
`,
	"stream-bounded-select": `name: stream-bounded
engine: stream
inputs:
  events: events.records
outputs:
  results: {path: out/r.jsonl.ppml, key: "file:k"}
  late: {path: out/late.jsonl.ppml, key: "file:k"}
  dead_letters: {path: out/dead.jsonl.ppml, key: "file:k"}
parameters:
  source: {stream: vitals, format: json}
  event_time: {field: reading.at, unit: unix_ms}
  filter: [{field: reading.kind, ne: test}]
  select: [patient, {field: reading.bpm, as: bpm}]
  sink: {late: vitals-late}
  keys: {source: keys/vitals.key.ppml}
`,
}

func TestDigestsPinned(t *testing.T) {
	got := map[string]string{}
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || (filepath.Ext(p) != ".yaml" && filepath.Ext(p) != ".yml") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Contains(b, []byte("\nengine:")) && !bytes.HasPrefix(b, []byte("engine:")) {
			return nil // not a job manifest (openapi.yaml)
		}
		rel, _ := filepath.Rel(repoRoot, p)
		m, err := job.Load(p, specs.All)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		got[filepath.ToSlash(rel)] = m.DigestString()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range inline {
		m, err := job.Parse([]byte(src), "/jobs", specs.All)
		if err != nil {
			t.Errorf("inline %s: %v", name, err)
			continue
		}
		got["inline:"+name] = m.DigestString()
	}
	for _, a := range adhoc() {
		data, err := a.job.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		m, err := job.Parse(data, "/jobs", specs.All)
		if err != nil {
			t.Errorf("ppml sql %s: %v", a.name, err)
			continue
		}
		got["ppml-sql:"+a.name] = m.DigestString()
	}
	var names []string
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	var table strings.Builder
	for _, n := range names {
		table.WriteString("\t\"" + n + "\": \"" + got[n] + "\",\n")
		if want, ok := pinned[n]; !ok {
			t.Errorf("%s: no pinned digest (add it to pinned: %s)", n, got[n])
		} else if want != got[n] {
			t.Errorf("%s: digest %s, pinned %s: the job's identity changed", n, got[n], want)
		}
	}
	for n := range pinned {
		if _, ok := got[n]; !ok {
			t.Errorf("%s: pinned, but no longer in the repository", n)
		}
	}
	if t.Failed() {
		t.Logf("digests now:\n%s", table.String())
	}
}

type adhocJob struct {
	name string
	job  sqlspec.AdHoc
}

// adhoc are jobs `ppml sql` builds from its flags: owners allow their
// digests too.
func adhoc() []adhocJob {
	return []adhocJob{
		{"query", sqlspec.AdHoc{Inputs: []sqlspec.NamedPath{{Name: "people", Path: "people.json.ppml"}}, Query: "SELECT name FROM people WHERE age > 21", Formats: map[string]string{}}},
		{"interactive", sqlspec.AdHoc{Inputs: []sqlspec.NamedPath{{Name: "people", Path: "people.json.ppml"}}, Formats: map[string]string{}}},
		{"format-resources", sqlspec.AdHoc{Inputs: []sqlspec.NamedPath{{Name: "t", Path: "/data/t.ppml"}, {Name: "u", Path: "u.ppml"}}, Query: "SELECT * FROM t JOIN u USING (id)",
			Memory: "2GiB", Threads: 2, Formats: map[string]string{"t": "csv", "u": "text"}}},
	}
}
