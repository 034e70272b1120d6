// Package job parses, validates and identifies ppml job manifests.
//
// A job manifest (YAML, specified in docs/jobs.md) names the engine that runs,
// the encrypted inputs it reads, the outputs it writes and the keys they are
// encrypted under, the engine's parameters and the resources it may use.
//
// The manifest's canonical form (RFC 8785 JSON of the parsed, defaulted
// manifest) and its SHA-256 digest are the job identity a data owner pins in
// a key policy: the digest covers what code runs on the owner's data and
// under which keys results leave the TEE, and deliberately not the host paths
// where the untrusted host happens to store the files.
//
// Parsing is strict: unknown fields, duplicate keys, YAML anchors and aliases
// are errors, and every error names the field and its line.
//
// Each engine reads its own parameters section through a Spec (a pure-Go
// package beside the engine, e.g. engine/sql/sqlspec). Parse takes the set
// of specs to accept: a runtime accepts the engines built into it
// (launcher.Specs), the key service and the CLI every engine of the platform
// (package engine/specs). This package knows no engine itself.
package job
