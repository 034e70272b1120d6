//go:build !ppml_no_exec

package main

// The exec engine: runs an external program on the decrypted inputs.
import _ "github.com/ppml/ppml/engine/exec"
