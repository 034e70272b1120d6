package model

import (
	"strings"
	"testing"
)

// A runtime without a backend for a file says which kind of file it got and why it cannot
// serve it (this package's tests link no backend).
func TestLoadWithoutBackend(t *testing.T) {
	if b := Backends(); len(b) != 0 {
		t.Fatalf("backends %v in a package that links none", b)
	}
	if _, err := Load([]byte("PK\x03\x04rest of a zip"), LoadOptions{Name: "m", Version: "1"}); err == nil || !strings.Contains(err.Error(), "built without deep learning, ppml_no_dl") ||
		!strings.Contains(err.Error(), "say backend: torchscript in the model's entry of the manifest") {
		t.Errorf("a PyTorch archive: %v", err)
	}
	if _, err := Load([]byte("PK\x03\x04rest of a zip"), LoadOptions{Backend: TorchScriptBackend}); err == nil || !strings.Contains(err.Error(), "a TorchScript model (as the job says): this runtime serves no TorchScript models") {
		t.Errorf("backend torchscript in a runtime without it: %v", err)
	}
	if _, err := Load([]byte(`{"format":"ppml-model"}`), LoadOptions{Name: "m", Version: "1"}); err == nil || !strings.Contains(err.Error(), "not a model file any backend of this runtime reads") {
		t.Errorf("JSON: %v", err)
	}
	RegisterBackend(Backend{Name: "json", Detect: func(b []byte) bool { return strings.HasPrefix(string(b), "{") },
		Load: func([]byte, LoadOptions) (Model, error) { return nil, nil }})
	defer func() { backends = nil }()
	if _, err := Load([]byte(`{}`), LoadOptions{}); err != nil {
		t.Errorf("a registered backend: %v", err)
	}
	if _, err := Load([]byte(`{}`), LoadOptions{Backend: "json"}); err != nil {
		t.Errorf("the backend the job names: %v", err)
	}
	// A file that is not what the job says is refused, whichever backend would read it.
	if _, err := Load([]byte("PK\x03\x04rest of a zip"), LoadOptions{Backend: "json"}); err == nil || !strings.Contains(err.Error(), "the job says backend json, but the file is not a model it reads (it is a PyTorch archive, a dl model: backend torchscript)") {
		t.Errorf("a PyTorch archive for backend json: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("a second backend of one name was accepted")
		}
	}()
	RegisterBackend(Backend{Name: "json", Detect: func([]byte) bool { return false }, Load: func([]byte, LoadOptions) (Model, error) { return nil, nil }})
}
