// Package specs lists the parameter spec of every engine of the platform.
// The key service (job digests in releases and policies) and the ppml CLI
// (ppml job validate, ppml job digest, ppml gramine manifest) parse
// manifests with it, so they accept every engine without linking any: each
// spec is a pure-Go package beside its engine. A runtime parses with the
// engines built into it instead (launcher.Specs).
//
// Adding an engine adds its spec here (docs/engines.md).
package specs

import (
	"github.com/ppml/ppml/engine/dl/dlspec"
	"github.com/ppml/ppml/engine/exec/execspec"
	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/engine/serve/servespec"
	"github.com/ppml/ppml/engine/sql/sqlspec"
	"github.com/ppml/ppml/engine/stream/streamspec"
	"github.com/ppml/ppml/job"
)

// All is every engine's spec.
var All job.Specs = job.NewSpecSet(
	dlspec.Spec,
	execspec.Spec,
	mlspec.Spec,
	servespec.Spec,
	sqlspec.Spec,
	streamspec.Spec,
)
