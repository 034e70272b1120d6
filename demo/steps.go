package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/launcher"
	"github.com/ppml/ppml/policy"
)

// maxResult bounds what the owner reads back.
const maxResult = 16 << 20

// Step 6.
func (e *env) decryptResult(ctx context.Context, st *Step) error {
	for _, j := range e.jobs {
		if j.Own {
			continue
		}
		for _, out := range j.outputs {
			f, err := envelope.OpenFile(out, e.resultKey.LocalKey)
			if err != nil {
				return fmt.Errorf("decrypt %s: %w", e.rel(out), err)
			}
			plain, err := io.ReadAll(io.LimitReader(f, maxResult))
			f.Close()
			if err != nil {
				return fmt.Errorf("decrypt %s: %w", e.rel(out), err)
			}
			st.detail("%s, decrypted in memory with result key %s:", e.rel(out), e.resultKey.ID())
			for _, l := range strings.Split(strings.TrimRight(string(plain), "\n"), "\n") {
				st.detail("  | %s", l)
			}
			if m := e.canary.find(plain); m != "" {
				return fmt.Errorf("the result contains the planted marker %q: suppression failed", m)
			}
			if j.want != nil && !bytes.Equal(plain, j.want) {
				return fmt.Errorf("job %s: the decrypted result differs from the aggregate of the plaintext the owner computed", j.Name)
			}
			if e.sum.Result == "" {
				e.sum.Result = string(plain)
			}
		}
	}
	st.detail("it equals the aggregate the owner computes from the plaintext; the canary's one-visit diagnosis is suppressed")
	return nil
}

// The modified-job step.
func (e *env) modifiedJob(ctx context.Context, st *Step) error {
	j := e.jobs[0]
	mod, change, err := j.Modify(j.manifest)
	if err != nil {
		return err
	}
	if n := diffBytes(j.manifest, mod); n != 1 {
		return fmt.Errorf("the modified manifest differs in %d bytes, want 1", n)
	}
	pm, err := job.Parse(mod, e.dir)
	if err != nil {
		return fmt.Errorf("modified job: %w", err)
	}
	path := filepath.Join(e.dir, "job-modified.yaml")
	if err := os.WriteFile(path, mod, 0o644); err != nil {
		return err
	}
	e.sum.ModifiedDigest = pm.DigestString()
	st.detail("%s: one byte changed (%s); digest %s instead of the approved %s", e.rel(path), change, short([]string{e.sum.ModifiedDigest})[0], short([]string{j.digest})[0])

	before := map[string]string{}
	for _, o := range j.outputs {
		if before[o], err = fileSHA256(o); err != nil {
			return err
		}
	}
	outDir := filepath.Join(e.dir, "out")
	entsBefore, _ := os.ReadDir(outDir)

	run, err := e.launch(ctx, path)
	for _, l := range run.log {
		st.detail("%s", l)
	}
	var de *launcher.DeniedError
	if !errors.As(err, &de) {
		if err == nil {
			return errors.New("the modified job ran: the key service released the key")
		}
		return fmt.Errorf("the modified job failed, but not by a key denial: %w", err)
	}
	if len(de.Denials) == 0 || de.Denials[0].Rule != policy.RuleJob {
		return fmt.Errorf("refused for another reason than the job digest: %v", err)
	}
	d := de.Denials[0]
	e.sum.Refusal = &d
	st.detail("refused: key %s: rule %s: %s", d.Key, d.Rule, d.Reason)

	// The program never ran: the launcher never got to "running", the
	// program printed nothing, and the output is untouched.
	for _, l := range run.log {
		if strings.HasPrefix(l, "launcher: running") {
			return errors.New("the launcher started the program of the refused job")
		}
	}
	if run.program != "" {
		return errors.New("the refused job's program printed output: it ran")
	}
	for o, h := range before {
		if got, err := fileSHA256(o); err != nil || got != h {
			return fmt.Errorf("the output %s changed after the refused run", e.rel(o))
		}
	}
	if entsAfter, _ := os.ReadDir(outDir); len(entsAfter) != len(entsBefore) {
		return errors.New("the refused run left a file in the output directory")
	}
	st.detail("the program never started, printed nothing, and the output is unchanged")

	den, err := e.findEntry(ctx, audit.TypeDenial, e.sum.ModifiedDigest)
	if err != nil {
		return err
	}
	entry, head, err := e.owner.AuditReceipt(ctx, den.Index, e.auditPub)
	if err != nil {
		return fmt.Errorf("inclusion proof of the denial: %w", err)
	}
	if entry.Decision != audit.Deny || entry.Rule != policy.RuleJob || entry.Actor != e.runnerTokenID {
		return fmt.Errorf("denial entry %d: decision %s rule %s actor %s, want deny, %s, %s", entry.Index, entry.Decision, entry.Rule, entry.Actor, policy.RuleJob, e.runnerTokenID)
	}
	e.sum.Denial = entry
	st.detail("audit entry #%d: denial of %s to token %s, rule %s, job sha256:%s… — proven included in the signed tree head of %d entries",
		entry.Index, entry.Key, entry.Actor, entry.Rule, entry.JobDigest.String()[:16], head.Size)
	st.fact("rule", d.Rule)
	st.fact("denial_entry", fmt.Sprint(entry.Index))
	return nil
}

func diffBytes(a, b []byte) int {
	if len(a) != len(b) {
		return max(len(a), len(b))
	}
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}
