//go:build !ppml_no_ml

package main

import (
	_ "github.com/ppml/ppml/engine/ml" // the ml engine: XGBoost, linear models (cgo)
	"github.com/ppml/ppml/internal/runcli/mlcmd"
)

// ppml-run ml: the ml engine on local files (ppml ml hands over to it).
func init() { commands = append(commands, mlcmd.New) }
