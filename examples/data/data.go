// Package data embeds the bundled sample datasets, so that `ppml demo` works
// from the installed binary alone.
package data

import _ "embed"

// PatientsCSV is patients.csv: synthetic clinic visits (no real person), one
// row per visit: patient_id, name, birth_year, visit_date, icd10, diagnosis,
// cost_eur.
//
//go:embed patients.csv
var PatientsCSV []byte
