package model

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ppml/ppml/dl/declared"
)

// LoadOptions name a served model and size what it may run at once.
type LoadOptions struct {
	Name, Version string
	// Threads is the number of predictions that run at once (model instances, each
	// single-threaded). ≤ 0: the backend's default.
	Threads int
	// MaxBatch is the rows a full dynamic batch holds: a backend that computes large requests
	// in pieces of bounded size (to bound its working memory) makes its pieces at least this
	// large.
	MaxBatch int
	// Declared describes a TorchScript file without ppml metadata, as the job declares it
	// (models[].torchscript): the file is loaded by the torchscript backend whatever its
	// first bytes.
	Declared *declared.Model
	// Backend names the backend the job says must load the file (models[].backend); "":
	// the one that recognizes it.
	Backend string
	// MemoryLimit bounds what a backend that counts its memory (torchscript: every tensor
	// libtorch allocates, in all the job's models) may take: resources.memory less what the
	// job holds otherwise. A model that would not fit is refused at load. 0: no limit.
	MemoryLimit int64
}

// TorchScriptBackend is the name of the backend of dl models (serve/model/torchscript).
const TorchScriptBackend = "torchscript"

// noTorchScript is the error of a runtime without the torchscript backend.
const noTorchScript = "this runtime serves no TorchScript models (built without deep learning, ppml_no_dl); serve it with ppml-run-dl: say backend: torchscript in the model's entry of the manifest (or declare it with torchscript), and ppml run picks ppml-run-dl"

// A Backend loads one kind of model file. Backends register themselves from their package's
// init (as engines do with the launcher), so a binary serves the kinds of model it links:
// package serve/model/tabular (ppml's XGBoost and linear models), serve/model/torchscript (the
// dl engine's models, on libtorch).
type Backend struct {
	// Name is what errors and logs call the backend ("tabular", "torchscript").
	Name string
	// Detect reports whether a file is of the backend's kind, from its first bytes only: it
	// must not parse the file.
	Detect func(file []byte) bool
	// Load decodes an untrusted model file from memory.
	Load func(file []byte, opt LoadOptions) (Model, error)
}

var (
	backendsMu sync.RWMutex
	backends   []Backend
)

// RegisterBackend adds a backend; it panics on a duplicate name (a programming error).
func RegisterBackend(b Backend) {
	if b.Name == "" || b.Detect == nil || b.Load == nil {
		panic("model: RegisterBackend needs a name, Detect and Load")
	}
	backendsMu.Lock()
	defer backendsMu.Unlock()
	for _, o := range backends {
		if o.Name == b.Name {
			panic("model: backend " + b.Name + " registered twice")
		}
	}
	backends = append(backends, b)
}

// Backends lists the registered backends' names, in registration order.
func Backends() []string {
	backendsMu.RLock()
	defer backendsMu.RUnlock()
	names := make([]string, len(backends))
	for i, b := range backends {
		names[i] = b.Name
	}
	return names
}

// zipMagic starts every PyTorch archive (TorchScript or state dict).
var zipMagic = []byte("PK\x03\x04")

// Load loads a model file with the backend that recognizes it.
func Load(file []byte, opt LoadOptions) (Model, error) {
	want := opt.Backend
	if opt.Declared != nil {
		want = TorchScriptBackend
	}
	backendsMu.RLock()
	var found *Backend
	for i := range backends {
		if want != "" && backends[i].Name == want || want == "" && backends[i].Detect(file) {
			found = &backends[i]
			break
		}
	}
	names := make([]string, len(backends))
	for i, b := range backends {
		names[i] = b.Name
	}
	backendsMu.RUnlock()
	if found != nil {
		if opt.Declared == nil && want != "" && !found.Detect(file) {
			// The file is not what the job says: the job was approved for another kind.
			return nil, fmt.Errorf("the job says backend %s, but the file is not a model it reads (%s)", want, kindOf(file))
		}
		return found.Load(file, opt)
	}
	if want == TorchScriptBackend {
		return nil, errors.New("a TorchScript model (as the job says): " + noTorchScript)
	}
	if want != "" {
		return nil, fmt.Errorf("the job says backend %s, which this runtime does not have (built in: %s)", want, strings.Join(names, ", "))
	}
	if bytes.HasPrefix(file, zipMagic) {
		return nil, errors.New("a PyTorch archive (a dl model): " + noTorchScript)
	}
	return nil, fmt.Errorf("not a model file any backend of this runtime reads (built in: %s): a ppml model or XGBoost JSON starts with '{', a dl model is a PyTorch zip archive",
		strings.Join(names, ", "))
}

// kindOf names what a file looks like from its first bytes, for errors.
func kindOf(file []byte) string {
	switch {
	case bytes.HasPrefix(file, zipMagic):
		return "it is a PyTorch archive, a dl model: backend torchscript"
	case len(bytes.TrimLeft(file, " \t\r\n")) > 0 && bytes.TrimLeft(file, " \t\r\n")[0] == '{':
		return "it is JSON, a ppml XGBoost or linear model: backend tabular"
	}
	return "it is neither a PyTorch archive nor JSON"
}
