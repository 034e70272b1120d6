package core

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ppml/ppml/audit"
	"github.com/ppml/ppml/store"
)

// Refusals are requests refused before any key was looked at: a release
// without a valid nonce, manifest, public key or evidence, or an owner
// naming another tenant's key. Anyone with a token can send them as fast
// as the rate limit allows, naming up to 64 keys each, so they write no
// entry each (which would let one client grow the log by megabytes a
// second and bury the owners' trails). They are counted (Observer.Refused)
// and summed per API token over an interval; each interval with refusals
// becomes one entry on the token's tenant trail (audit.TypeRefusals).
// Denials after the evidence checks are the owners' record and stay one
// entry per key.
type refusals struct {
	every time.Duration
	mu    sync.Mutex
	m     map[string]*refusalWindow // by token id
}

type refusalWindow struct {
	token, tenant string
	start, last   time.Time
	requests      uint64
	keys          uint64
	rules         map[string]uint64
}

// maxRefusalWindows bounds the windows kept in memory (one per token that
// was refused in the current interval); beyond it, all are written early.
const maxRefusalWindows = 1 << 14

// refuse counts a refused request of who naming keys keys; it writes the
// token's previous summary when its interval is over.
func (c *Core) refuse(who *Caller, rule string, keys int) {
	if c.cfg.Observer != nil {
		c.cfg.Observer.Refused(rule)
	}
	now := c.now()
	r := &c.refusals
	r.mu.Lock()
	var done []*refusalWindow
	w := r.m[who.TokenID]
	if w != nil && now.Sub(w.start) >= r.every {
		done = append(done, w)
		w = nil
	}
	if w == nil {
		if len(r.m) >= maxRefusalWindows {
			for _, x := range r.m {
				done = append(done, x)
			}
			clear(r.m)
		}
		w = &refusalWindow{token: who.TokenID, tenant: who.Tenant, start: now, rules: map[string]uint64{}}
		r.m[who.TokenID] = w
	}
	if now.After(w.last) {
		w.last = now
	}
	if now.Before(w.start) {
		w.start = now
	}
	w.requests++
	w.keys += uint64(keys)
	if len(w.rules) < 64 || w.rules[rule] > 0 {
		w.rules[rule]++
	} else {
		w.rules["other"]++
	}
	r.mu.Unlock()
	c.writeRefusals(done)
}

// FlushRefusals writes the summary of every open refusal window now (at
// Close, and for tests); flushStale writes those whose interval is over.
func (c *Core) FlushRefusals() error { return c.writeRefusals(c.takeRefusals(true)) }

func (c *Core) flushStale() { c.writeRefusals(c.takeRefusals(false)) }

func (c *Core) takeRefusals(all bool) []*refusalWindow {
	now := c.now()
	r := &c.refusals
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*refusalWindow
	for k, w := range r.m {
		if all || now.Sub(w.start) >= r.every {
			out = append(out, w)
			delete(r.m, k)
		}
	}
	slices.SortFunc(out, func(a, b *refusalWindow) int { return a.start.Compare(b.start) })
	return out
}

func (c *Core) writeRefusals(ws []*refusalWindow) error {
	if len(ws) == 0 {
		return nil
	}
	err := c.db.Batch(func(tx store.Tx) error {
		for _, w := range ws {
			if err := c.record(tx, w.entry()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		c.cfg.Logger.Error("audit: writing refusal summaries failed", "windows", len(ws), "error", err.Error())
	}
	return err
}

// entry is the window's summary entry: its rule is the most frequent one,
// its reason the counts by rule.
func (w *refusalWindow) entry() audit.Entry {
	rules := make([]string, 0, len(w.rules))
	for r := range w.rules {
		rules = append(rules, r)
	}
	slices.Sort(rules)
	top := ""
	var parts []string
	for _, r := range rules {
		if top == "" || w.rules[r] > w.rules[top] {
			top = r
		}
		parts = append(parts, fmt.Sprintf("%s %d", r, w.rules[r]))
	}
	reason := fmt.Sprintf("%d requests naming %d keys refused before any key was looked at, from %s to %s: %s",
		w.requests, w.keys, w.start.UTC().Format(time.RFC3339), w.last.UTC().Format(time.RFC3339), strings.Join(parts, ", "))
	return audit.Entry{Type: audit.TypeRefusals, Tenant: w.tenant, Actor: w.token, Decision: audit.Deny, Rule: top, Reason: truncate(reason, maxReason)}
}

// startRefusalFlusher writes due summaries every interval until stop is closed.
func (c *Core) startRefusalFlusher() {
	c.stopFlush = make(chan struct{})
	c.flushDone = make(chan struct{})
	go func() {
		defer close(c.flushDone)
		t := time.NewTicker(c.refusals.every)
		defer t.Stop()
		for {
			select {
			case <-c.stopFlush:
				return
			case <-t.C:
				c.flushStale()
			}
		}
	}()
}
