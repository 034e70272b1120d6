package auditlog_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms/auditlog"
	"github.com/ppml/ppml/seal"
	"github.com/ppml/ppml/store"
	"github.com/ppml/ppml/store/boltstore"
)

// Example shows how the server wires the pieces: a sealed root key, the
// encrypted store, and the audit log written in the same transaction as the
// change it records; then an owner's offline verification of an export.
func Example() {
	dir, _ := os.MkdirTemp("", "ppml-example")
	defer os.RemoveAll(dir)

	root, _, err := seal.Boot(dir, &seal.File{Path: filepath.Join(dir, "root.key")}, "ppml.db")
	if err != nil {
		panic(err)
	}
	backend, err := boltstore.Open(filepath.Join(dir, "ppml.db"), nil)
	if err != nil {
		panic(err)
	}
	db, err := store.Open(backend, root, nil)
	if err != nil {
		panic(err)
	}
	defer db.Close()
	signer, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	log := auditlog.New(auditlog.Config{Signer: signer, Blinder: db})

	err = db.Update(func(tx store.Tx) error {
		if err := tx.Put("keys", []byte("hospital-a/patients@1"), []byte("key material")); err != nil {
			return err
		}
		_, err := log.Append(tx, audit.Entry{Type: audit.TypeKeyCreate, Tenant: "hospital-a", Key: "patients", KeyVersion: 1})
		return err
	})
	if err != nil {
		panic(err)
	}

	var export bytes.Buffer
	db.View(func(tx store.Tx) error { _, err := log.Export(tx, &export); return err })
	res, err := audit.VerifyExport(&export, audit.VerifyOptions{PublicKey: signer.Public()})
	fmt.Println(res.TreeHead.Size, err)
	// Output: 1 <nil>
}
