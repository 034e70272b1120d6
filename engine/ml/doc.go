// Package mlengine is the ml engine: it trains XGBoost (boosted trees and random forests),
// linear and logistic regression models on a table, applies a model to a table, and evaluates a
// model on a labelled table. It registers itself with the trusted launcher (job.go), which calls
// it with inputs decrypted into memory; ppml ml calls RunFiles on local files. The manifest
// parameters are read by package mlspec, which the key service uses without XGBoost.
// Parameters and formats: docs/ml.md ("Jobs") and docs/formats/ml-model.md.
package mlengine
