package kms

import (
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/ppml/ppml/atomicfile"
	"github.com/ppml/ppml/store"
)

// WitnessFile is the state witness in the data directory: the store id and
// state version the server last ran with (at its last start and its last
// clean stop), MACed under a key derived from the root key. A database
// whose state is older than the witness says was replaced by an older copy
// of itself — a restore done by hand, or a rollback — which the database
// alone cannot show (docs/formats/key-service-store.md). It is a second
// line only: whoever can replace ppml.db can usually replace this file
// too, so owners' saved audit tree heads remain the proof.
const WitnessFile = "state-witness.json"

type witness struct {
	StoreID      string    `json:"store_id"`
	StateVersion uint64    `json:"state_version"`
	Time         time.Time `json:"time"`
	MAC          []byte    `json:"mac"`
}

// checkWitness compares db's state with the witness, if there is one.
func checkWitness(dataDir string, db *store.DB, logger *slog.Logger) error {
	p := filepath.Join(dataDir, WitnessFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		logger.Info("no state witness yet; writing one", "file", p)
		return nil
	}
	if err != nil {
		return fmt.Errorf("kms: %w", err)
	}
	var w witness
	if err := json.Unmarshal(b, &w); err != nil || len(w.MAC) == 0 || !hmac.Equal(w.MAC, db.WitnessMAC(w.StoreID, w.StateVersion)) {
		return fmt.Errorf("kms: refusing to start: %s is damaged or was not written by this server (it does not authenticate under the root key); if you know why, remove it and start again", p)
	}
	h, err := db.Head()
	if err != nil {
		return fmt.Errorf("kms: %w", err)
	}
	restore := fmt.Sprintf("If you restored a backup on purpose, record the restore: put the previous database back and run ppml server restore --data-dir %s BACKUP (or remove %s if the previous database is gone). Otherwise the database was rolled back by someone with access to the disk", dataDir, WitnessFile)
	if w.StoreID != h.StoreID {
		return fmt.Errorf("kms: refusing to start: %s is another database (store %s) than the one this server last ran on (store %s, state version %d). %s", DBFile, h.StoreID, w.StoreID, w.StateVersion, restore)
	}
	if h.Version < w.StateVersion {
		return fmt.Errorf("kms: refusing to start: %s is at state version %d (last written %s), older than the state version %d this server last ran with: it was replaced by an older copy. %s", DBFile, h.Version, h.Time.Format(time.RFC3339), w.StateVersion, restore)
	}
	return nil
}

// writeWitness records db's current state in the witness file.
func writeWitness(dataDir string, db *store.DB) error {
	h, err := db.Head()
	if err != nil {
		return fmt.Errorf("kms: state witness: %w", err)
	}
	w := witness{StoreID: h.StoreID, StateVersion: h.Version, Time: h.Time, MAC: db.WitnessMAC(h.StoreID, h.Version)}
	b, err := json.MarshalIndent(&w, "", "  ")
	if err != nil {
		return err
	}
	f, err := atomicfile.Create(filepath.Join(dataDir, WitnessFile), atomicfile.Options{Perm: 0o600, Overwrite: true})
	if err != nil {
		return fmt.Errorf("kms: state witness: %w", err)
	}
	defer f.Abort()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("kms: state witness: %w", err)
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("kms: state witness: %w", err)
	}
	return nil
}
