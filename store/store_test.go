package store_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/kms/auditlog"
	"github.com/ppml/ppml/store"
	"github.com/ppml/ppml/store/boltstore"
)

func newKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// open opens the encrypted store over a bbolt file, as the key service does.
func open(path string, key []byte) (*store.DB, error) {
	b, err := boltstore.Open(path, nil)
	if err != nil {
		return nil, err
	}
	db, err := store.Open(b, key, nil)
	if err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

func openTemp(t *testing.T) (*store.DB, string, []byte) {
	t.Helper()
	key := newKey()
	path := filepath.Join(t.TempDir(), "ppml.db")
	db, err := open(path, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path, key
}

// openRaw opens an encrypted store and gives access to its backend, as an
// attacker holding the file could write it.
func openRaw(t *testing.T) (*store.DB, store.Store) {
	t.Helper()
	b, err := boltstore.Open(filepath.Join(t.TempDir(), "ppml.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(b, newKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, b
}

func TestPutGetEncryptedAtRest(t *testing.T) {
	db, path, key := openTemp(t)
	secret := []byte("primary key material: do not leak 0123456789")
	err := db.Update(func(tx store.Tx) error {
		if err := tx.Put("keys", []byte("hospital/k1@1"), secret); err != nil {
			return err
		}
		return tx.Put("keys", []byte("hospital/k2@1"), []byte("second"))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(tx store.Tx) error {
		got, err := tx.Get("keys", []byte("hospital/k1@1"))
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("Get = %q, %v", got, err)
		}
		if _, err := tx.Get("keys", []byte("nope")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing key: %v", err)
		}
		if _, err := tx.Get("nobucket", []byte("k")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing bucket: %v", err)
		}
		var keys []string
		tx.Scan("keys", nil, nil, func(k, v []byte) error { keys = append(keys, string(k)); return nil })
		if strings.Join(keys, ",") != "hospital/k1@1,hospital/k2@1" {
			t.Fatalf("ForEach keys %v", keys)
		}
		return nil
	})
	db.Close()
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, secret[:20]) || bytes.Contains(raw, []byte("second")) {
		t.Fatal("plaintext value in the database file")
	}
	// Reopen with the right key works; with another key is refused at open.
	db2, err := open(path, key)
	if err != nil {
		t.Fatal(err)
	}
	db2.Close()
	if _, err := open(path, newKey()); !errors.Is(err, store.ErrWrongRootKey) {
		t.Fatalf("wrong root key: %v", err)
	}
}

// TestSwappedValuesFail: a value moved to another key or bucket at the bbolt
// level (as an attacker with the file could) fails authentication.
func TestSwappedValuesFail(t *testing.T) {
	db, raw := openRaw(t)
	db.Update(func(tx store.Tx) error {
		tx.Put("policies", []byte("k1"), []byte("allow everything"))
		tx.Put("policies", []byte("k2"), []byte("allow nothing"))
		return tx.Put("other", []byte("k2"), []byte("x"))
	})
	err := raw.Update(func(tx store.Tx) error {
		v, err := tx.Get("policies", []byte("k1"))
		if err != nil {
			return err
		}
		v = append([]byte(nil), v...)
		if err := tx.Put("policies", []byte("k2"), v); err != nil {
			return err
		}
		return tx.Put("other", []byte("k2"), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(tx store.Tx) error {
		for _, b := range []string{"policies", "other"} {
			_, err := tx.Get(b, []byte("k2"))
			if err == nil || !strings.Contains(err.Error(), "failed authentication") {
				t.Errorf("%s/k2 after swap: %v", b, err)
			}
			if strings.Contains(fmt.Sprint(err), "allow") {
				t.Error("error leaks the value")
			}
		}
		return nil
	})
	// A flipped bit anywhere in the sealed value fails too.
	raw.Update(func(tx store.Tx) error {
		v, err := tx.Get("policies", []byte("k1"))
		if err != nil {
			return err
		}
		v = append([]byte(nil), v...)
		v[len(v)/2] ^= 1
		return tx.Put("policies", []byte("k1"), v)
	})
	db.View(func(tx store.Tx) error {
		if _, err := tx.Get("policies", []byte("k1")); err == nil {
			t.Error("bit flip accepted")
		}
		return nil
	})
}

func TestReservedAndEmptyNames(t *testing.T) {
	db, _, _ := openTemp(t)
	if err := db.Update(func(tx store.Tx) error { return tx.Put("_store", []byte("canary"), []byte("x")) }); err == nil {
		t.Fatal("write to the store's own bucket accepted")
	}
	if err := db.Update(func(tx store.Tx) error { return tx.Put("_mine", []byte("k"), []byte("x")) }); err == nil {
		t.Fatal("reserved bucket name accepted")
	}
	if err := db.Update(func(tx store.Tx) error { return tx.Put("", []byte("k"), []byte("x")) }); err == nil {
		t.Fatal("empty bucket name accepted")
	}
	if err := db.Update(func(tx store.Tx) error { return tx.Put("b", nil, []byte("x")) }); err == nil {
		t.Fatal("empty key accepted")
	}
}

func TestBackupRestores(t *testing.T) {
	db, _, key := openTemp(t)
	db.Update(func(tx store.Tx) error { return tx.Put("keys", []byte("a"), []byte("1")) })
	dst := filepath.Join(t.TempDir(), "backup.db")
	if err := db.BackupFile(dst); err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx store.Tx) error { return tx.Put("keys", []byte("b"), []byte("2")) })
	fi, err := os.Stat(dst)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	b, err := open(dst, key)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.View(func(tx store.Tx) error {
		if v, err := tx.Get("keys", []byte("a")); err != nil || string(v) != "1" {
			t.Fatalf("backup lacks a: %v", err)
		}
		if _, err := tx.Get("keys", []byte("b")); !errors.Is(err, store.ErrNotFound) {
			t.Fatal("backup has a later write")
		}
		return nil
	})
}

func TestBlindIsKeyed(t *testing.T) {
	db1, _, _ := openTemp(t)
	db2, _, _ := openTemp(t)
	if !bytes.Equal(db1.Blind([]byte("n")), db1.Blind([]byte("n"))) {
		t.Fatal("Blind not deterministic")
	}
	if bytes.Equal(db1.Blind([]byte("n")), db2.Blind([]byte("n"))) {
		t.Fatal("Blind does not depend on the root key")
	}
}

// --- crash safety ---

const crashEnv = "PPML_STORE_CRASH_CHILD"

func crashValue(i int, bucket string) []byte {
	return []byte(fmt.Sprintf("%s value %d %s", bucket, i, strings.Repeat("x", i%200)))
}

// crashChild writes transactions until killed: each one puts entry i in two
// buckets and appends an audit entry, then prints "ack i" once committed.
func crashChild(dir string, key []byte) {
	db, err := open(filepath.Join(dir, "ppml.db"), key)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	lg := auditlog.New(auditlog.Config{Blinder: db})
	start := 0
	db.View(func(tx store.Tx) error {
		return tx.Scan("a", nil, nil, func(k, v []byte) error { start++; return nil })
	})
	w := bufio.NewWriter(os.Stdout)
	for i := start; ; i++ {
		err := db.Update(func(tx store.Tx) error {
			k := []byte(fmt.Sprintf("k%08d", i))
			if err := tx.Put("a", k, crashValue(i, "a")); err != nil {
				return err
			}
			if err := tx.Put("b", k, crashValue(i, "b")); err != nil {
				return err
			}
			_, err := lg.Append(tx, audit.Entry{Type: audit.TypeKeyCreate, Tenant: "t", Key: string(k), RequestID: strconv.Itoa(i)})
			return err
		})
		if err != nil {
			fmt.Println("update:", err)
			os.Exit(3)
		}
		fmt.Fprintf(w, "ack %d\n", i)
		w.Flush()
	}
}

func TestCrashSafety(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		key, _ := hex.DecodeString(os.Getenv(crashEnv + "_KEY"))
		crashChild(dir, key)
		return
	}
	dir := t.TempDir()
	key := newKey()
	signer := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	rounds := 6
	if testing.Short() {
		rounds = 2
	}
	maxAck := -1
	for round := 0; round < rounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashSafety$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, crashEnv+"_KEY="+hex.EncodeToString(key))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill at a random moment after a random number of acknowledged
		// commits, so the kill lands anywhere in a transaction's life.
		killAfter := 5 + mrand.IntN(40)
		delay := time.Duration(mrand.IntN(3000)) * time.Microsecond
		sc := bufio.NewScanner(out)
		acks := 0
		for sc.Scan() {
			line := sc.Text()
			if n, ok := strings.CutPrefix(line, "ack "); ok {
				i, _ := strconv.Atoi(n)
				if i != maxAck+1 {
					t.Fatalf("round %d: child acknowledged %d after %d", round, i, maxAck)
				}
				maxAck = i
				acks++
				if acks == killAfter {
					time.Sleep(delay)
					cmd.Process.Signal(syscall.SIGKILL)
				}
			} else if strings.HasPrefix(line, "open:") || strings.HasPrefix(line, "update:") {
				t.Fatalf("child: %s", line)
			}
		}
		// The loop above drained every ack the child printed before it died.
		cmd.Wait()
		if acks < killAfter {
			t.Fatalf("round %d: child stopped after %d acks", round, acks)
		}

		db, err := open(filepath.Join(dir, "ppml.db"), key)
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		lg := auditlog.New(auditlog.Config{Blinder: db, Signer: signer})
		var na, nb int
		var size uint64
		var export bytes.Buffer
		err = db.View(func(tx store.Tx) error {
			for _, b := range []string{"a", "b"} {
				n := 0
				if err := tx.Scan(b, nil, nil, func(k, v []byte) error {
					want := crashValue(n, b)
					if string(k) != fmt.Sprintf("k%08d", n) || !bytes.Equal(v, want) {
						return fmt.Errorf("%s: entry %d is %q=%q", b, n, k, v)
					}
					n++
					return nil
				}); err != nil {
					return err
				}
				if b == "a" {
					na = n
				} else {
					nb = n
				}
			}
			var err error
			if size, err = lg.Size(tx); err != nil {
				return err
			}
			_, err = lg.Export(tx, &export)
			return err
		})
		db.Close()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		// Every acknowledged write is there; at most the one in flight at
		// the kill also committed; the two buckets and the audit log agree.
		if na < maxAck+1 || na > maxAck+2 {
			t.Fatalf("round %d: %d entries after %d acknowledged", round, na, maxAck+1)
		}
		if nb != na || size != uint64(na) {
			t.Fatalf("round %d: half-written transaction visible: a=%d b=%d audit=%d", round, na, nb, size)
		}
		if _, err := audit.VerifyExport(&export, audit.VerifyOptions{PublicKey: signer.Public()}); err != nil {
			t.Fatalf("round %d: audit log after crash: %v", round, err)
		}
		maxAck = na - 1 // the child resumes after what committed
	}
	t.Logf("%d rounds, %d committed transactions", rounds, maxAck+1)
}

// TestScanAndKeys: prefix, start and early stop, with values decrypted by
// Scan and left alone by Keys.
func TestScanAndKeys(t *testing.T) {
	db, _, _ := openTemp(t)
	db.Update(func(tx store.Tx) error {
		for _, k := range []string{"a1", "b1", "b2", "b3", "c1"} {
			if err := tx.Put("idx", []byte(k), []byte("v"+k)); err != nil {
				return err
			}
		}
		return nil
	})
	db.View(func(tx store.Tx) error {
		var got []string
		tx.Scan("idx", []byte("b"), []byte("b2"), func(k, v []byte) error {
			got = append(got, string(k)+"="+string(v))
			return nil
		})
		if strings.Join(got, ",") != "b2=vb2,b3=vb3" {
			t.Errorf("Scan(prefix b, start b2) = %v", got)
		}
		got = nil
		if err := tx.Keys("idx", nil, nil, func(k []byte) error {
			got = append(got, string(k))
			if len(got) == 2 {
				return store.ErrStop
			}
			return nil
		}); err != nil {
			t.Errorf("ErrStop surfaced: %v", err)
		}
		if strings.Join(got, ",") != "a1,b1" {
			t.Errorf("Keys with stop = %v", got)
		}
		boom := errors.New("boom")
		if err := tx.Scan("idx", nil, nil, func(k, v []byte) error { return boom }); !errors.Is(err, boom) {
			t.Errorf("Scan error: %v", err)
		}
		if err := tx.Scan("missing", nil, nil, func(k, v []byte) error { return boom }); err != nil {
			t.Errorf("Scan of a missing bucket: %v", err)
		}
		return nil
	})
}

// TestNamespace: a subsystem writes its reserved buckets only through
// store.Namespace, encrypted like the rest; the store's own bucket stays
// out of reach.
func TestNamespace(t *testing.T) {
	db, raw := openRaw(t)
	err := db.Update(func(tx store.Tx) error {
		ns := store.Namespace(tx, "_audit")
		if err := ns.Put("entries", []byte("k"), []byte("secret entry")); err != nil {
			return err
		}
		if err := ns.Put("index", []byte("k"), nil); err != nil {
			return err
		}
		v, err := ns.Get("entries", []byte("k"))
		if err != nil || string(v) != "secret entry" {
			t.Errorf("namespaced Get: %q %v", v, err)
		}
		if _, err := tx.Get("_audit/entries", []byte("k")); err != nil {
			t.Errorf("the namespace is bucket _audit/entries: %v", err)
		}
		if err := tx.Put("_audit/entries", []byte("k2"), []byte("x")); err == nil {
			t.Error("a reserved bucket written without Namespace")
		}
		if err := store.Namespace(tx, "_store").Put("canary", []byte("k"), []byte("x")); err == nil {
			t.Error("the store's own bucket written through Namespace")
		}
		if err := store.Namespace(tx, "audit").Put("entries", []byte("k"), []byte("x")); err == nil {
			t.Error("an unreserved namespace accepted")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	raw.View(func(tx store.Tx) error {
		v, err := tx.Get("_audit/entries", []byte("k"))
		if err != nil || bytes.Contains(v, []byte("secret")) {
			t.Errorf("at rest: %q %v", v, err)
		}
		return nil
	})
}
