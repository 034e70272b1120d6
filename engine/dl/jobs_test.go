package dlengine

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"testing"

	_ "github.com/ppml/ppml/engine/exec" // examples/pytorch-lenet's script runs on the exec engine
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/ml/dataset"
)

// full runs the examples on the whole datasets and checks the README's figures
// (PPML_DL_FULL=1; a few minutes). By default they run on subsets, checking everything but the
// figures.
var full = os.Getenv("PPML_DL_FULL") == "1"

// TestLeNetExamples runs examples/dl/lenet's manifests through ppml run's launcher: train,
// evaluate, predict, on encrypted Fashion-MNIST files, encrypted outputs.
func TestLeNetExamples(t *testing.T) {
	w := newWorkspace(t, "../../examples/dl/lenet")
	nTrain, nTest := 2000, 500
	if full {
		nTrain, nTest = 60000, 10000
	}
	files := map[string][]byte{
		"train-images-idx3-ubyte.gz": fashionSubset(t, dataset.FashionTrainImages, 0, nTrain),
		"train-labels-idx1-ubyte.gz": fashionSubset(t, dataset.FashionTrainLabels, 0, nTrain),
		"t10k-images-idx3-ubyte.gz":  fashionSubset(t, dataset.FashionTestImages, 0, nTest),
		"t10k-labels-idx1-ubyte.gz":  fashionSubset(t, dataset.FashionTestLabels, 0, nTest),
	}
	for name, b := range files {
		w.encrypt(t, name+".ppml", b, envelope.TypeBytes)
	}
	// Rows of pixels of a training image and of a test image: plaintext never to be found.
	train := gunzip(t, files["train-images-idx3-ubyte.gz"])
	test := gunzip(t, files["t10k-images-idx3-ubyte.gz"])
	w.markers = [][]byte{train[16+784*3+300 : 16+784*3+364], test[16+784*7+300 : 16+784*7+364]}

	if _, err := w.run(t, "train.yaml"); err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(w.out(t, "lenet5.report.json.ppml"), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Metrics == nil || rep.Metrics.TestRows != nTest || rep.Training.TrainRows != nTrain || len(rep.Training.EpochLoss) != 3 ||
		rep.Training.LRStepEpochs != 2 || rep.Training.LRGamma != 0.3 {
		t.Fatalf("report %+v", rep)
	}
	acc := rep.Metrics.Classification.Accuracy
	t.Logf("LeNet-5, %d training images, 3 epochs: test accuracy %.4f, log-loss %.4f, epoch losses %.4f", nTrain, acc, rep.Metrics.Classification.LogLoss, rep.Training.EpochLoss)
	switch {
	case full && math.Abs(acc-lenetAccuracy) > 0.005:
		t.Errorf("test accuracy %.4f, the README says %.4f", acc, lenetAccuracy)
	case !full && acc < 0.65:
		t.Errorf("test accuracy %.4f after 3 epochs on %d images", acc, nTrain)
	}
	mod, err := DecodeModel(w.out(t, "lenet5.pt.ppml"), "")
	if err != nil {
		t.Fatal(err)
	}
	if mod.Meta.TrainingJobDigest == "" || mod.Meta.TrainingJobDigest != rep.TrainingJobDigest || mod.Kind != "torchscript" {
		t.Fatalf("model: digest %q, kind %s", mod.Meta.TrainingJobDigest, mod.Kind)
	}
	if sd, err := DecodeModel(w.out(t, "lenet5.state.pt.ppml"), ""); err != nil || sd.Kind != "state_dict" {
		t.Fatalf("state dict: %v", err)
	}

	if _, err := w.run(t, "evaluate.yaml"); err != nil {
		t.Fatal(err)
	}
	var ev Report
	if err := json.Unmarshal(w.out(t, "lenet5.evaluation.json.ppml"), &ev); err != nil {
		t.Fatal(err)
	}
	// The same model on the same test images: the same figures as the training report.
	if ev.Metrics.Classification.Accuracy != acc || ev.Metrics.TestRows != nTest {
		t.Fatalf("evaluate: accuracy %v on %d rows, training reported %v", ev.Metrics.Classification.Accuracy, ev.Metrics.TestRows, acc)
	}

	if _, err := w.run(t, "predict.yaml"); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(w.out(t, "lenet5.predictions.csv.ppml"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != nTest+1 || len(rows[0]) != 12 || rows[0][1] != "prediction" {
		t.Fatalf("predictions: %d rows, header %v", len(rows), rows[0])
	}
	labels := gunzip(t, files["t10k-labels-idx1-ubyte.gz"])[8:]
	right := 0
	for i, r := range rows[1:] {
		p, _ := strconv.Atoi(r[1])
		if p == int(labels[i]) {
			right++
		}
	}
	if got := float64(right) / float64(nTest); got != acc {
		t.Fatalf("predictions are right on %.4f of the images, evaluate says %.4f", got, acc)
	}
	w.scan(t)
}

// The figures of examples/dl/lenet/README.md and examples/dl/text/README.md (full data).
const (
	lenetAccuracy = 0.8840
	spamAccuracy  = 0.9892
)

// TestTextExamples runs examples/dl/text: the spam classifier on the encrypted corpus.
func TestTextExamples(t *testing.T) {
	w := newWorkspace(t, "../../examples/dl/text")
	plain, err := os.ReadFile(dataset.Require(t, dataset.Spam))
	if err != nil {
		t.Fatal(err)
	}
	if !full {
		plain = firstRows(t, plain, 1500)
	}
	w.encrypt(t, "spam.csv.ppml", plain, envelope.TypeCSV)
	// The start of the last mail's text: plaintext never to be found.
	recs, err := csv.NewReader(bytes.NewReader(plain)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1][2]
	w.markers = [][]byte{[]byte(last[:min(len(last), 48)])}
	if _, err := w.run(t, "train.yaml"); err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(w.out(t, "spam.report.json.ppml"), &rep); err != nil {
		t.Fatal(err)
	}
	cl := rep.Metrics.Classification
	t.Logf("text classifier: %d training mails, vocabulary %d: held-out accuracy %.4f, AUC %.4f, log-loss %.4f, confusion %v", rep.Training.TrainRows, rep.Architecture.VocabSize, cl.Accuracy, *cl.AUC, cl.LogLoss, cl.Confusion)
	switch {
	case full && math.Abs(cl.Accuracy-spamAccuracy) > 0.005:
		t.Errorf("held-out accuracy %.4f, the README says %.4f", cl.Accuracy, spamAccuracy)
	case !full && cl.Accuracy < 0.85:
		t.Errorf("held-out accuracy %.4f", cl.Accuracy)
	}
	if _, err := w.run(t, "evaluate.yaml"); err != nil {
		t.Fatal(err)
	}
	var ev Report
	if err := json.Unmarshal(w.out(t, "spam.evaluation.json.ppml"), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Metrics.Classification.Accuracy < cl.Accuracy-0.02 {
		t.Errorf("accuracy on all mails %.4f, on the held-out ones %.4f", ev.Metrics.Classification.Accuracy, cl.Accuracy)
	}
	w.scan(t)
}

// firstRows keeps the header and the first n records of a CSV file (records may span lines).
func firstRows(t *testing.T, b []byte, n int) []byte {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	// Spam and ham are in file order: take rows from both ends.
	keep := append(recs[:1:1], recs[1:1+n/2]...)
	keep = append(keep, recs[len(recs)-n/2:]...)
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	cw.WriteAll(keep)
	return buf.Bytes()
}

// TestPyTorchLeNetExample runs examples/pytorch-lenet: the plain PyTorch script with the exec
// engine on the encrypted files, then the dl engine's evaluation of the model it wrote, which
// must find the accuracy the script reported.
func TestPyTorchLeNetExample(t *testing.T) {
	python(t)
	w := newWorkspace(t, "../../examples/pytorch-lenet")
	nTrain, nTest := 1000, 300
	if full {
		nTrain, nTest = 60000, 10000
	}
	for name, b := range map[string][]byte{
		"train-images-idx3-ubyte.gz": fashionSubset(t, dataset.FashionTrainImages, 0, nTrain),
		"train-labels-idx1-ubyte.gz": fashionSubset(t, dataset.FashionTrainLabels, 0, nTrain),
		"t10k-images-idx3-ubyte.gz":  fashionSubset(t, dataset.FashionTestImages, 0, nTest),
		"t10k-labels-idx1-ubyte.gz":  fashionSubset(t, dataset.FashionTestLabels, 0, nTest),
	} {
		w.encrypt(t, name+".ppml", b, envelope.TypeBytes)
	}
	if _, err := w.run(t, "job.yaml"); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		TestAccuracy float64 `json:"test_accuracy"`
		TrainImages  int     `json:"train_images"`
	}
	if err := json.Unmarshal(w.out(t, "pytorch-lenet5.report.json.ppml"), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.TrainImages != nTrain {
		t.Fatalf("report %+v", rep)
	}
	if _, err := w.run(t, "evaluate.yaml"); err != nil {
		t.Fatal(err)
	}
	var ev Report
	if err := json.Unmarshal(w.out(t, "pytorch-lenet5.evaluation.json.ppml"), &ev); err != nil {
		t.Fatal(err)
	}
	t.Logf("PyTorch's test accuracy %.4f, the dl engine's %.4f", rep.TestAccuracy, ev.Metrics.Classification.Accuracy)
	if math.Abs(ev.Metrics.Classification.Accuracy-rep.TestAccuracy) > 1e-6 {
		t.Fatalf("the dl engine finds accuracy %v, the PyTorch script %v", ev.Metrics.Classification.Accuracy, rep.TestAccuracy)
	}
	w.scan(t)
}
