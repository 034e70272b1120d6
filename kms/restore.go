package kms

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms/core"
	"github.com/ppml/ppml/seal"
	"github.com/ppml/ppml/seal/shamir"
	"github.com/ppml/ppml/store"
	"github.com/ppml/ppml/store/boltstore"
)

// RestoreConfig says which backup to restore into which (stopped) key
// service's data directory, and how to recover its root key.
type RestoreConfig struct {
	DataDir string
	// Backup is the database backup to restore (ppml server backup).
	Backup string
	// Operator names who restores; it is recorded on the audit log.
	Operator string
	// SealKeyFile (file seal, default DataDir/root.key), Shares (Shamir
	// seal: at least K shares in text form), TEEKeyDir and TEEKeyName
	// (TEE seal) recover the root key; the seal type is seal.json's.
	SealKeyFile           string
	Shares                []string
	TEEKeyDir, TEEKeyName string
	// Now is the clock of the audit entry (default time.Now).
	Now func() time.Time
}

// RestoreResult describes a restore.
type RestoreResult struct {
	// Backup is the restored database's state as the backup held it, and
	// BackupAuditSize its audit log's size; the restore entry is entry
	// BackupAuditSize (the first after the backup's).
	Backup          store.Head
	BackupAuditSize uint64
	BackupSHA256    string
	// Replaced is the state of the database the restore replaced (zero
	// when there was none or its head could not be read: ReplacedNote says why).
	Replaced     store.Head
	ReplacedNote string
	// KeptAs is where the replaced database was moved ("" if none).
	KeptAs string
	// Migrated counts rows of a backup written by an earlier format.
	Migrated int
	// State is the restored database's state after the restore entry.
	State store.Head
}

// Restore replaces the database of a stopped key service with a backup,
// as an explicit, recorded operator action: it recovers the root key with
// the directory's seal, checks the whole backup (it must open under that
// root key and pass the state check), appends a "restore" entry naming the
// backup (its store id, state version, time of last write and SHA-256),
// the database it replaces and the operator to the restored audit log,
// moves the replaced database aside (ppml.db.before-restore-TIME, never
// deleted) and records the new state in the state witness. A backup copied
// in place by hand instead leaves no such record, and the witness refuses
// it at start.
func Restore(cfg RestoreConfig) (*RestoreResult, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := checkOperator(cfg.Operator); err != nil {
		return nil, err
	}
	st, err := seal.LoadState(cfg.DataDir)
	if errors.Is(err, seal.ErrNoState) {
		return nil, fmt.Errorf("restore: %s has no %s: restore it from the backup's data directory first (it is not secret), then restore the database", cfg.DataDir, seal.StateFile)
	}
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	root, err := restoreRootKey(&cfg, st)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer clear(root)

	res := &RestoreResult{}
	dbPath := filepath.Join(cfg.DataDir, DBFile)
	if sameFile(cfg.Backup, dbPath) {
		return nil, fmt.Errorf("restore: %s is the database itself, not a backup of it", cfg.Backup)
	}
	// Hold the current database's lock while reading its head: a running
	// server holds it, and must be stopped first.
	if _, err := os.Lstat(dbPath); err == nil {
		cur, err := boltstore.Open(dbPath, &boltstore.Options{Timeout: time.Second})
		if errors.Is(err, boltstore.ErrLocked) {
			return nil, fmt.Errorf("restore: %s is in use: stop the key service first", dbPath)
		}
		if err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		if h, err := store.ReadHead(cur, root); err == nil {
			res.Replaced = h
		} else {
			res.ReplacedNote = "its state head could not be read: " + err.Error()
		}
		cur.Close()
	} else {
		res.ReplacedNote = "there was no database"
	}

	tmp := dbPath + ".restoring"
	sum, err := copyFile(cfg.Backup, tmp)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	res.BackupSHA256 = sum
	backend, err := boltstore.Open(tmp, nil)
	if err != nil {
		return nil, fmt.Errorf("restore: backup %s: %w", cfg.Backup, err)
	}
	db, err := store.Open(backend, root, &store.Options{Existing: true, Now: cfg.Now, Describe: core.DescribeBucket, Explain: core.ExplainState})
	if err != nil {
		backend.Close()
		return nil, fmt.Errorf("restore: backup %s does not open under this server's root key and pass the state check: %w", cfg.Backup, err)
	}
	defer db.Close()
	if res.Backup, err = db.Head(); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	res.Migrated = db.Migrated()
	if res.Migrated > 0 {
		if _, err := core.AppendOperatorEntry(db, audit.Entry{Type: audit.TypeStoreMigrate, Actor: "operator:" + cfg.Operator, Reason: fmt.Sprintf("store migrated to format 2 (authenticated state): %d rows resealed", res.Migrated)}, cfg.Now); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
	}
	replaced := res.ReplacedNote
	if replaced == "" {
		replaced = fmt.Sprintf("store %s at state version %d (last written %s)", res.Replaced.StoreID, res.Replaced.Version, res.Replaced.Time.Format(time.RFC3339))
	}
	reason := fmt.Sprintf("restored backup %q (sha256 %s; store %s at state version %d, last written %s); replaced %s",
		filepath.Base(cfg.Backup), sum, res.Backup.StoreID, res.Backup.Version, res.Backup.Time.Format(time.RFC3339), replaced)
	if res.BackupAuditSize, err = core.RecordRestore(db, audit.Entry{Type: audit.TypeRestore, Actor: "operator:" + cfg.Operator, Reason: reason}, cfg.Now); err != nil {
		return nil, fmt.Errorf("restore: record the restore: %w", err)
	}
	if res.State, err = db.Head(); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if _, err := os.Lstat(dbPath); err == nil {
		res.KeptAs = dbPath + ".before-restore-" + cfg.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(dbPath, res.KeptAs); err != nil {
			return nil, fmt.Errorf("restore: move the replaced database aside: %w", err)
		}
	}
	if err := os.Rename(tmp, dbPath); err != nil {
		return nil, fmt.Errorf("restore: %w (the replaced database is %s)", err, res.KeptAs)
	}
	ok = true
	if err := syncDir(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := writeWitness(cfg.DataDir, db); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	return res, nil
}

func checkOperator(name string) error {
	if name == "" || len(name) > 64 || strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("restore: operator %q: give who restores (1-64 printable characters); it is recorded on the audit log", name)
	}
	return nil
}

func restoreRootKey(cfg *RestoreConfig, st *seal.State) ([]byte, error) {
	switch st.Type {
	case seal.TypeFile:
		p := cfg.SealKeyFile
		if p == "" {
			p = filepath.Join(cfg.DataDir, "root.key")
		}
		return (&seal.File{Path: p}).Unseal(st)
	case seal.TypeShamir:
		var shares []shamir.Share
		for i, text := range cfg.Shares {
			sh, err := shamir.Parse(text)
			if err != nil {
				return nil, fmt.Errorf("unseal share %d: %w", i+1, err)
			}
			shares = append(shares, sh)
		}
		return (&seal.Shamir{Shares: shares}).Unseal(st)
	case seal.TypeTEE:
		return (&seal.TEE{KeyDir: cfg.TEEKeyDir, KeyName: cfg.TEEKeyName}).Unseal(st)
	}
	return nil, fmt.Errorf("seal %q is not supported", st.Type)
}

// copyFile copies src to a new file dst (0600, fsynced) and returns the
// hex SHA-256 of the bytes.
func copyFile(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("backup %s is not a regular file", src)
	}
	os.Remove(dst)
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return "", fmt.Errorf("copy %s: %w", src, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
