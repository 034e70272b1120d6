// Package envelopebench measures envelope encryption and decryption speed
// against raw single-core AES-256-GCM on the same machine in the same run.
package envelopebench

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"io"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/internal/usage"
)

// Result holds throughputs in bytes per second of wall-clock time, and for
// the single-goroutine runs also per second of the thread's CPU time, which
// other processes' load does not distort.
type Result struct {
	Bytes       int64   `json:"bytes"`
	SegmentSize int     `json:"segment_size"`
	CPUs        int     `json:"cpus"`
	LoadAverage float64 `json:"load_average"` // 1-minute load before the run

	RawGCM       float64 `json:"raw_aes_256_gcm_bytes_per_sec"`
	Encrypt      float64 `json:"encrypt_bytes_per_sec"` // all cores
	Decrypt      float64 `json:"decrypt_bytes_per_sec"`
	EncryptRatio float64 `json:"encrypt_ratio"`
	DecryptRatio float64 `json:"decrypt_ratio"`

	Encrypt1      float64 `json:"encrypt_one_core_bytes_per_sec"`
	Decrypt1      float64 `json:"decrypt_one_core_bytes_per_sec"`
	Encrypt1Ratio float64 `json:"encrypt_one_core_ratio"`
	Decrypt1Ratio float64 `json:"decrypt_one_core_ratio"`

	RawGCMCPU        float64 `json:"raw_aes_256_gcm_bytes_per_cpu_sec"`
	Encrypt1CPU      float64 `json:"encrypt_one_core_bytes_per_cpu_sec"`
	Decrypt1CPU      float64 `json:"decrypt_one_core_bytes_per_cpu_sec"`
	Encrypt1CPURatio float64 `json:"encrypt_one_core_cpu_ratio"`
	Decrypt1CPURatio float64 `json:"decrypt_one_core_cpu_ratio"`
}

// Busy reports whether other processes competed for the CPUs, which makes
// wall-clock ratios unreliable (multi-goroutine runs get a larger share).
func (r Result) Busy() bool { return r.LoadAverage > float64(r.CPUs)+0.5 }

type run struct {
	name   string
	f      func() error
	thread bool // runs on one goroutine: measure the thread's CPU time
	wall   time.Duration
	cpu    time.Duration
}

func (r *run) measure() error {
	who := unix.RUSAGE_SELF
	if r.thread {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		who = unix.RUSAGE_THREAD
	}
	var r0, r1 unix.Rusage
	unix.Getrusage(who, &r0)
	start := time.Now()
	err := r.f()
	wall := time.Since(start)
	unix.Getrusage(who, &r1)
	cpu := time.Duration(r1.Utime.Nano()-r0.Utime.Nano()) + time.Duration(r1.Stime.Nano()-r0.Stime.Nano())
	if err != nil {
		return fmt.Errorf("%s: %w", r.name, err)
	}
	if r.wall == 0 || wall < r.wall {
		r.wall = wall
	}
	if r.cpu == 0 || cpu < r.cpu {
		r.cpu = cpu
	}
	return nil
}

// Run encrypts size bytes held in memory (output discarded), decrypts an
// in-memory envelope of them (output discarded), and seals the same bytes with raw AES-256-GCM in segSize pieces on one
// goroutine into a reused buffer (the cipher's own speed, no copies). The
// runs are interleaved, rounds times, and the best of each counts.
func Run(size int64, segSize, rounds int) (Result, error) {
	if segSize == 0 {
		segSize = envelope.DefaultSegmentSize
	}
	rounds = max(rounds, 1)
	pt := make([]byte, size)
	chunk := make([]byte, 1<<20)
	rand.Read(chunk)
	for off := 0; off < len(pt); off += len(chunk) {
		copy(pt[off:], chunk)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	key, err := envelope.NewLocalKey(secret)
	if err != nil {
		return Result{}, err
	}
	ct := bytes.NewBuffer(make([]byte, 0, envelope.BodyLen(uint64(size), segSize)+4096))
	res := Result{Bytes: size, SegmentSize: segSize, CPUs: runtime.GOMAXPROCS(0), LoadAverage: usage.LoadAverage()}

	gk := make([]byte, 32)
	rand.Read(gk)
	blk, _ := aes.NewCipher(gk)
	gcm, err := cipher.NewGCM(blk)
	if err != nil {
		return res, err
	}
	raw := func() error {
		out := make([]byte, segSize+16)
		nonce := make([]byte, 12)
		for off := 0; off < len(pt); off += segSize {
			nonce[0]++
			gcm.Seal(out[:0], nonce, pt[off:min(off+segSize, len(pt))], nil)
		}
		return nil
	}
	opts := func(workers int) *envelope.Options {
		return &envelope.Options{SegmentSize: segSize, Size: size, SizeKnown: true, Workers: workers}
	}
	// The ciphertext the decrypt runs read; the timed encrypt runs write to
	// io.Discard, as raw AES-GCM keeps only one segment of output.
	if _, err := envelope.Encrypt(ct, bytes.NewReader(pt), key, opts(0)); err != nil {
		return res, fmt.Errorf("encrypt: %w", err)
	}
	enc := func(workers int) func() error {
		return func() error {
			_, err := envelope.Encrypt(io.Discard, bytes.NewReader(pt), key, opts(workers))
			return err
		}
	}
	dec := func(workers int) func() error {
		return func() error {
			r, err := envelope.NewReader(bytes.NewReader(ct.Bytes()), key)
			if err != nil {
				return err
			}
			r.SetWorkers(workers)
			_, err = r.WriteTo(io.Discard)
			return err
		}
	}
	runs := []*run{
		{name: "raw AES-GCM", f: raw, thread: true},
		{name: "encrypt", f: enc(0)},
		{name: "decrypt", f: dec(0)},
		{name: "encrypt (1 core)", f: enc(1), thread: true},
		{name: "decrypt (1 core)", f: dec(1), thread: true},
	}
	for i := 0; i < rounds; i++ {
		for _, r := range runs {
			runtime.GC()
			if err := r.measure(); err != nil {
				return res, err
			}
		}
	}
	wall := func(r *run) float64 { return float64(size) / r.wall.Seconds() }
	cpu := func(r *run) float64 { return float64(size) / max(r.cpu, time.Microsecond).Seconds() }
	res.RawGCM, res.Encrypt, res.Decrypt = wall(runs[0]), wall(runs[1]), wall(runs[2])
	res.Encrypt1, res.Decrypt1 = wall(runs[3]), wall(runs[4])
	res.EncryptRatio, res.DecryptRatio = res.Encrypt/res.RawGCM, res.Decrypt/res.RawGCM
	res.Encrypt1Ratio, res.Decrypt1Ratio = res.Encrypt1/res.RawGCM, res.Decrypt1/res.RawGCM
	res.RawGCMCPU, res.Encrypt1CPU, res.Decrypt1CPU = cpu(runs[0]), cpu(runs[3]), cpu(runs[4])
	res.Encrypt1CPURatio, res.Decrypt1CPURatio = res.Encrypt1CPU/res.RawGCMCPU, res.Decrypt1CPU/res.RawGCMCPU
	return res, nil
}
