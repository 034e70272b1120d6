//go:build !ppml_no_dl

package serve

// The dl engine's models (TorchScript archives and state dicts), served on libtorch. A
// runtime built without deep learning (ppml_no_dl) links no libtorch and refuses such model
// files with a message that says so.
import _ "github.com/ppml/ppml/serve/model/torchscript"
