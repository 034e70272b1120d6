package stream_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/envelope/envelopetest"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/launcher"
	"github.com/ppml/ppml/stream/record"
	"github.com/ppml/ppml/stream/redisstream"
	"github.com/ppml/ppml/stream/streamtest"
)

// TestLiveExample runs examples/stream/live as its README does, on a real
// redis-server (on a free port instead of 6390): the job runs under the
// launcher, the records are published while it runs, the results fetched
// from the log open with the results key and equal the bounded example's,
// and the stopped job drains and succeeds. The README shows the job's
// digest and the manifest's port.
func TestLiveExample(t *testing.T) {
	src := filepath.Join(examplesDir, "live")
	raw, err := os.ReadFile(filepath.Join(src, "job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(src, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m0, err := job.Parse(raw, "/", launcher.Specs())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, []byte(m0.DigestString())) || !bytes.Contains(raw, []byte("redis://127.0.0.1:6390")) {
		t.Errorf("README.md does not show the digest %s, or job.yaml moved off port 6390", m0.DigestString())
	}

	r := streamtest.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "job.yaml"), bytes.Replace(raw, []byte("127.0.0.1:6390"), []byte(r.Addr), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	owner, err := keyfile.Generate(filepath.Join(dir, "owner.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]*keyfile.Key{}
	for _, k := range []string{"stream", "results", "state"} {
		kf, err := keyfile.Generate(filepath.Join(dir, k+".key"), false)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, k+".key"))
		if err != nil {
			t.Fatal(err)
		}
		envelopetest.Encrypt(t, filepath.Join(dir, k+".key.ppml"), owner.LocalKey, b, envelope.TypeBytes)
		keys[k] = kf
	}
	text, err := os.ReadFile(filepath.Join(examplesDir, "wordcount", "cc0-1.0.txt"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := record.NewWriter("text", keys["stream"].LocalKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	var recs bytes.Buffer
	fw := record.NewFileWriter(&recs)
	if _, err := record.WriteLines(fw, w, bytes.NewReader(text), record.LineOptions{Partitions: 1, PerRecord: 10,
		Start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	end, err := w.SealEnd(0)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(end)
	fw.Flush()

	m, err := launcher.Load(filepath.Join(dir, "job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	lk, err := launcher.NewLocalKeys(filepath.Join(dir, "owner.key"))
	if err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() {
		_, err := launcher.Run(ctx, launcher.Config{Manifest: m, Keys: lk, Log: &log, Grace: 20 * time.Second})
		done <- err
	}()
	// The producer: logtool publish.
	fr := record.NewFileReader(&recs)
	for {
		b, err := fr.Next()
		if err != nil {
			break
		}
		if err := redisstream.Append(ctx, rdb, "text", 0, b); err != nil {
			t.Fatal(err)
		}
	}
	// The consumer: logtool fetch, then ppml stream decrypt.
	o := record.NewOpener(keys["results"].LocalKey)
	var lines []string
	deadline := time.Now().Add(time.Minute)
	for ended := false; !ended; {
		select {
		case err := <-done:
			t.Fatalf("the job ended before the stream did: %v\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no end record in wordcount:0 after a minute:\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
		got, err := redisstream.Read(ctx, rdb, "wordcount", 0)
		if err != nil {
			t.Fatal(err)
		}
		lines = lines[:0]
		for i, b := range got {
			rec, err := o.Open("wordcount", 0, b)
			if err != nil {
				t.Fatalf("result record %d: %v", i, err)
			}
			if rec.Kind == record.KindEnd {
				ended = true
				continue
			}
			lines = append(lines, strings.Split(strings.TrimSuffix(string(rec.Body), "\n"), "\n")...)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("the stopped job failed: %v\n%s", err, log.String())
	}
	sort.Strings(lines)
	want, err := os.ReadFile(filepath.Join(examplesDir, "wordcount", "results.expected.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lines, "\n") + "\n"; got != string(want) {
		t.Errorf("the live results (%d lines) differ from the bounded example's", len(lines))
	}
	if !strings.Contains(log.String(), "stream engine: stopped after") {
		t.Errorf("log:\n%s", log.String())
	}
}
