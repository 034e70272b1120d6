package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/engine/specs"
	"github.com/ppml/ppml/job"
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
			plain, d, err := e.decryptOutput(ctx, out)
			if err != nil {
				return err
			}
			st.detail("%s (header names %s), decrypted in memory through the key service: audit entry #%d, decrypt of %s@%d by the owner's token %s:", e.rel(out), e.resultRef, d.Index, d.Key, d.KeyVersion, d.Actor)
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
	pm, err := job.Parse(mod, e.dir, specs.All)
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
	var de *deniedError
	if !errors.As(err, &de) {
		if err == nil {
			return errors.New("the modified job ran: the key service released the key")
		}
		return fmt.Errorf("the modified job failed, but not by a key denial: %w", err)
	}
	if len(de.denials) == 0 || de.denials[0].Rule != policy.RuleJob {
		return fmt.Errorf("refused for another reason than the job digest: %v", err)
	}
	d := de.denials[0]
	e.sum.Refusal = &d
	outDenied := false
	for _, dd := range de.denials {
		st.detail("refused: key %s: rule %s: %s", dd.Key, dd.Rule, dd.Reason)
		outDenied = outDenied || (strings.Contains(dd.Key, ResultKeyName) && dd.Rule == policy.RuleJob)
	}
	if !outDenied {
		return fmt.Errorf("the results key %s was not refused on rule %s: %v", ResultKeyName, policy.RuleJob, err)
	}

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

	// All or nothing: no input key released and no output key issued.
	for _, k := range []struct {
		name string
		t    audit.Type
	}{{KeyName, audit.TypeRelease}, {ResultKeyName, audit.TypeOutputKey}} {
		es, err := e.owner.AuditList(ctx, k.name, 0, 1000)
		if err != nil {
			return fmt.Errorf("audit list: %w", err)
		}
		for _, en := range es {
			if en.Type == k.t && "sha256:"+en.JobDigest.String() == e.sum.ModifiedDigest {
				return fmt.Errorf("audit entry #%d: %s of %s for the refused job", en.Index, k.t, k.name)
			}
		}
	}
	st.detail("no release of %s and no output_key of %s for the modified job on the audit log: it got no key at all", KeyName, ResultKeyName)

	den, err := e.findEntry(ctx, KeyName, audit.TypeDenial, e.sum.ModifiedDigest)
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
	od, err := e.findEntry(ctx, ResultKeyName, audit.TypeDenial, e.sum.ModifiedDigest)
	if err != nil {
		return err
	}
	if od.Decision != audit.Deny || od.Rule != policy.RuleJob || od.Actor != e.runnerTokenID {
		return fmt.Errorf("denial entry %d of %s: decision %s rule %s actor %s, want deny, %s, %s", od.Index, ResultKeyName, od.Decision, od.Rule, od.Actor, policy.RuleJob, e.runnerTokenID)
	}
	e.sum.OutputDenial = od
	st.detail("audit entry #%d: denial of %s to token %s, rule %s, job sha256:%s… — proven included in the signed tree head of %d entries",
		entry.Index, entry.Key, entry.Actor, entry.Rule, entry.JobDigest.String()[:16], head.Size)
	st.detail("audit entry #%d: denial of the output key %s to the same token, rule %s", od.Index, od.Key, od.Rule)
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
