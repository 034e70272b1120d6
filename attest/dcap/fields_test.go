package dcap

// Synthesized TDX evidence for every TDX policy rule: a TD 1.0 quote body
// with chosen field values, signed under the test PKI, verified with real
// Intel collateral re-signed by the test TCB signing key, then evaluated.
// For each rule there is a quote that passes and one that fails on that
// field alone. The event log is a real one (the shim+grub CCEL log of
// attest/ccel/testdata), bound to the quote by setting RTMR0-3 to its
// replay.

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ppml/ppml/attest"
	"github.com/ppml/ppml/attest/ccel"
	"github.com/ppml/ppml/attest/dcap/abi"
	"github.com/ppml/ppml/policy"
)

// Offsets in a TD 1.0 report body.
const (
	tdTEETCBSVN     = 0
	tdMRSeam        = 16
	tdMRSignerSeam  = 64
	tdAttributes    = 120
	tdXFAM          = 128
	tdMRTD          = 136
	tdMRConfigID    = 184
	tdMROwner       = 232
	tdMROwnerConfig = 280
	tdRTMR0         = 328
)

func d48(s string) []byte { d := sha512.Sum384([]byte(s)); return d[:] }

func readGzip(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tdxLab signs TD quotes and verifies them against (edited) collateral.
type tdxLab struct {
	t      *testing.T
	pki    *testPKI
	chain  string
	real   *Quote
	bundle Bundle
	at     time.Time
	log    []byte // the real CCEL log
	replay [4][48]byte
}

func newTDXLab(t *testing.T) *tdxLab {
	tc := caseByID(t, "phala-tdx-v4")
	rq, err := ParseQuote(tc.quote)
	if err != nil {
		t.Fatal(err)
	}
	realPCK, err := x509.ParseCertificate(rq.PCKChain[0])
	if err != nil {
		t.Fatal(err)
	}
	p := newTestPKI(t, realPCK)
	log := readGzip(t, "../ccel/testdata/ccel_grub.bin.gz")
	l, err := ccel.Parse(log)
	if err != nil {
		t.Fatal(err)
	}
	log = log[:l.Length]
	return &tdxLab{t: t, pki: p, chain: pemChain(p.pck, p.pckCA, p.root), real: rq, bundle: bundleOf(t, tc.bundle), at: tc.at, log: log, replay: l.Replay()}
}

// body returns the base TD body: the real quote's, with known values for
// the fields policies pin and RTMR0-3 set to the log's replay.
func (l *tdxLab) body() []byte {
	b := bytes.Clone(l.real.Signed[abi.HeaderSize:])
	copy(b[tdMRConfigID:], d48("config id"))
	copy(b[tdMROwner:], d48("owner"))
	copy(b[tdMROwnerConfig:], d48("owner config"))
	binary.LittleEndian.PutUint64(b[tdAttributes:], 1<<28) // SEPT_VE_DISABLE
	for i := range 4 {
		copy(b[tdRTMR0+48*i:], l.replay[i][:])
	}
	return b
}

// quote signs a TD body into a v4 quote.
func (l *tdxLab) quote(body []byte) []byte {
	signed := append(bytes.Clone(l.real.Signed[:abi.HeaderSize]), body...)
	return l.pki.signQuote(signed, l.real.QEReportRaw, l.chain, 4)
}

// verify checks a quote (and event log) against the lab's collateral,
// edited by edit when given.
func (l *tdxLab) verify(quote, log []byte, edit func(*Bundle)) (*attest.Claims, error) {
	l.t.Helper()
	bd := l.bundle
	if edit != nil {
		edit(&bd)
	}
	col, err := NewCollateral(l.pki.bundle(bd, l.at))
	if err != nil {
		l.t.Fatalf("collateral: %v", err)
	}
	v := &Verifier{Source: StaticSource(col), Roots: l.pki.roots()}
	return v.Verify(l.t.Context(), &attest.Evidence{Platform: attest.PlatformTDX, Data: quote, EventLog: log}, attest.VerifyOptions{Time: l.at})
}

func replaceOnce(t *testing.T, s, old, new string, n int) string {
	t.Helper()
	i := -1
	for range n {
		j := strings.Index(s[i+1:], old)
		if j < 0 {
			t.Fatalf("collateral has no occurrence %d of %q", n, old)
		}
		i += 1 + j
	}
	return s[:i] + new + s[i+len(old):]
}

// tdxPolicy pins the lab's base body and the RTMR1 and RTMR2 events of its
// log (every RTMR1 event by digest, the kernel command line in RTMR2).
func (l *tdxLab) tdxPolicy(t *testing.T) string {
	lg, _ := ccel.Parse(l.log)
	var rtmr1 []string
	seen := map[string]bool{}
	var cmdline string
	for i := range lg.Events {
		e := &lg.Events[i]
		r, ok := e.RTMR()
		d := hex.EncodeToString(e.SHA384())
		switch {
		case ok && r == 1 && !seen[d]:
			seen[d] = true
			rtmr1 = append(rtmr1, fmt.Sprintf("          - {name: %q, digests: [%s]}", fmt.Sprintf("%s #%d", ccel.TypeName(e.Type), len(rtmr1)+1), d))
		case ok && r == 2 && e.Describe() == "LOADED_IMAGE::LoadOptions":
			cmdline = d
		}
	}
	if cmdline == "" || len(rtmr1) < 3 {
		t.Fatal("the grub log lacks the expected events")
	}
	b := l.body()
	h := func(off, n int) string { return hex.EncodeToString(b[off : off+n]) }
	return fmt.Sprintf(`version: 1
platforms:
  tdx:
    measurements: [%s]
    rtmr0: [%s]
    rtmr1: [%s]
    rtmr2: [%s]
    rtmr3: [%s]
    mrconfigid: [%s]
    mrowner: [%s]
    mrownerconfig: [%s]
    mrseam: [%s]
    mrsignerseam: [%s]
    td_attributes: {require: [SEPT_VE_DISABLE], forbid: [DEBUG, PERFMON]}
    xfam: {values: [0x%016x]}
    min_tee_tcb_svn: 02000300000000000000000000000000
    tcb_statuses: [UpToDate, SWHardeningNeeded, OutOfDate]
    platform_tcb_statuses: [UpToDate]
    qe_tcb_statuses: [UpToDate]
    tdx_module_tcb_statuses: [UpToDate]
    event_log:
      - rtmr: 1
        events:
%s
      - rtmr: 2
        events:
          - {name: kernel command line, digests: [%s]}
        allow_other_events: true
`, h(tdMRTD, 48), h(tdRTMR0, 48), h(tdRTMR0+48, 48), h(tdRTMR0+96, 48), h(tdRTMR0+144, 48),
		h(tdMRConfigID, 48), h(tdMROwner, 48), h(tdMROwnerConfig, 48), h(tdMRSeam, 48), h(tdMRSignerSeam, 48),
		binary.LittleEndian.Uint64(b[tdXFAM:]), strings.Join(rtmr1, "\n"), cmdline)
}

func TestTDXPolicyOnSignedQuotes(t *testing.T) {
	lab := newTDXLab(t)
	pol, err := policy.Parse([]byte(lab.tdxPolicy(t)))
	if err != nil {
		t.Fatalf("%v\n%s", err, lab.tdxPolicy(t))
	}
	base := lab.body()
	cl, err := lab.verify(lab.quote(base), lab.log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := policy.Evaluate(pol, cl, nil, lab.at); !d.Allow {
		t.Fatalf("base quote: %+v", d)
	}
	lg, _ := ccel.Parse(lab.log)
	extending := 0
	for i := range lg.Events {
		if _, ok := lg.Events[i].RTMR(); ok {
			extending++
		}
	}
	if cl.EventLog == nil || fmt.Sprint(cl.EventLog.ReplayedRTMRs) != "[0 1 2 3]" || len(cl.EventLog.Events) != extending {
		t.Fatalf("event log claims: %+v", cl.EventLog)
	}
	if strings.Join(cl.TDAttributes.Flags, ",") != "SEPT_VE_DISABLE" || cl.PlatformTCBStatus != "UpToDate" || cl.TDXModuleTCBStatus != "UpToDate" || cl.QETCBStatus != "UpToDate" {
		t.Fatalf("claims %+v", cl)
	}

	type tc struct {
		name  string
		body  func(b []byte)      // edits the TD body
		coll  func(*Bundle)       // edits the collateral
		log   func([]byte) []byte // replaces the event log
		rule  string
		field string
		check string // a verification failure instead of a policy denial
	}
	setU64 := func(off int, v uint64) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint64(b[off:], v) }
	}
	set := func(off int, v []byte) func([]byte) { return func(b []byte) { copy(b[off:], v) } }
	f := "platforms.tdx."
	zeros := strings.Repeat("0", 96)
	otherSigner := hex.EncodeToString(d48("another module signer"))
	cases := []tc{
		{name: "mrtd", body: set(tdMRTD, d48("other firmware")), rule: policy.RuleMeasurement, field: f + "measurements"},
		{name: "rtmr0", body: set(tdRTMR0, d48("firmware config")), rule: policy.RuleRTMR, field: f + "rtmr0"},
		{name: "rtmr1", body: set(tdRTMR0+48, d48("kernel")), rule: policy.RuleRTMR, field: f + "rtmr1"},
		{name: "rtmr2", body: set(tdRTMR0+96, d48("cmdline")), rule: policy.RuleRTMR, field: f + "rtmr2"},
		{name: "rtmr3", body: set(tdRTMR0+144, d48("app")), rule: policy.RuleRTMR, field: f + "rtmr3"},
		{name: "mrconfigid", body: set(tdMRConfigID, d48("other config")), rule: policy.RuleMRConfigID, field: f + "mrconfigid"},
		{name: "mrowner", body: set(tdMROwner, d48("mallory")), rule: policy.RuleMROwner, field: f + "mrowner"},
		{name: "mrownerconfig", body: set(tdMROwnerConfig, make([]byte, 48)), rule: policy.RuleMROwnerConfig, field: f + "mrownerconfig"},
		{name: "mrseam", body: set(tdMRSeam, d48("other module build")), rule: policy.RuleMRSeam, field: f + "mrseam"},
		{name: "mrsignerseam, collateral agrees", body: set(tdMRSignerSeam, d48("another module signer")),
			coll: func(b *Bundle) {
				b.TCBInfo = strings.ReplaceAll(b.TCBInfo, `"mrsigner":"`+zeros+`"`, `"mrsigner":"`+otherSigner+`"`)
			},
			rule: policy.RuleMRSignerSeam, field: f + "mrsignerseam"},
		{name: "mrsignerseam, collateral disagrees", body: set(tdMRSignerSeam, d48("another module signer")), check: "tdx_module_identity"},
		{name: "SEPT_VE_DISABLE off", body: setU64(tdAttributes, 0), rule: policy.RuleTDAttributes, field: f + "td_attributes"},
		{name: "PERFMON on", body: setU64(tdAttributes, 1<<28|1<<63), rule: policy.RuleTDAttributes, field: f + "td_attributes"},
		{name: "DEBUG on", body: setU64(tdAttributes, 1<<28|1), rule: policy.RuleDebug, field: f + "allow_debug"},
		{name: "xfam", body: func(b []byte) { b[tdXFAM+1] ^= 0x18 }, rule: policy.RuleXFAM, field: f + "xfam"},
		// TEE_TCB_SVN byte 2 (the TDX late microcode update) 2: below the
		// policy's 3, still Intel's UpToDate level (which needs 2).
		{name: "tee_tcb_svn", body: func(b []byte) { b[tdTEETCBSVN+2] = 2 }, rule: policy.RuleTEETCBSVN, field: f + "min_tee_tcb_svn"},
		// Module SVN 3: Intel's TDX_01 level 2 is OutOfDate while the platform
		// stays UpToDate; the converged OutOfDate is accepted, the module's is not.
		{name: "TDX module worse than platform", body: func(b []byte) { b[tdTEETCBSVN] = 3 }, rule: policy.RuleComponentTCB, field: f + "tdx_module_tcb_statuses"},
		{name: "platform SWHardeningNeeded", coll: func(b *Bundle) {
			b.TCBInfo = replaceOnce(t, b.TCBInfo, `"tcbStatus":"UpToDate"`, `"tcbStatus":"SWHardeningNeeded"`, 3)
		}, rule: policy.RuleComponentTCB, field: f + "platform_tcb_statuses"},
		{name: "QE out of date", coll: func(b *Bundle) {
			b.QEIdentity = replaceOnce(t, b.QEIdentity, `{"tcb":{"isvsvn":4}`, `{"tcb":{"isvsvn":99}`, 1)
		}, rule: policy.RuleComponentTCB, field: f + "qe_tcb_statuses"},
		{name: "no event log", log: func([]byte) []byte { return nil }, rule: policy.RuleEventLog, field: f + "event_log[0]"},
		{name: "log hides an RTMR1 extension", body: func(b []byte) {
			// RTMR1 as if one more, unlogged digest had been extended.
			h := sha512.New384()
			h.Write(b[tdRTMR0+48 : tdRTMR0+96])
			h.Write(d48("unlogged boot application"))
			copy(b[tdRTMR0+48:], h.Sum(nil))
		}, rule: policy.RuleRTMR, field: f + "rtmr1"},
		{name: "log with a changed RTMR1 event", log: func(b []byte) []byte {
			lg, _ := ccel.Parse(b)
			for i := range lg.Events {
				if r, ok := lg.Events[i].RTMR(); ok && r == 1 {
					d := lg.Events[i].SHA384()
					off := bytes.Index(b, d)
					c := bytes.Clone(b)
					c[off] ^= 1
					return c
				}
			}
			return nil
		}, rule: policy.RuleEventLog, field: f + "event_log[0]"},
		{name: "malformed log", log: func(b []byte) []byte { return b[:len(b)-3] }, check: "event_log"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(base)
			if c.body != nil {
				c.body(b)
			}
			log := lab.log
			if c.log != nil {
				log = c.log(bytes.Clone(lab.log))
			}
			cl, err := lab.verify(lab.quote(b), log, c.coll)
			if c.check != "" {
				if checkName(err) != c.check {
					t.Fatalf("verify: %v, want check %s", err, c.check)
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			d := policy.Evaluate(pol, cl, nil, lab.at)
			if d.Allow || d.Rule != c.rule || d.Field != c.field {
				t.Fatalf("got %+v, want rule %s field %s", d, c.rule, c.field)
			}
			t.Logf("%s: %s", d.Field, d.Reason)
			if c.name == "TDX module worse than platform" && (cl.TCBStatus != "OutOfDate" || cl.PlatformTCBStatus != "UpToDate" || cl.TDXModuleTCBStatus != "OutOfDate") {
				t.Fatalf("statuses: converged %s, platform %s, module %s", cl.TCBStatus, cl.PlatformTCBStatus, cl.TDXModuleTCBStatus)
			}
		})
	}
}

// TestEventLogClaims: what the verifier reports about a log, and the
// evidence it refuses.
func TestEventLogClaims(t *testing.T) {
	lab := newTDXLab(t)
	b := lab.body()
	copy(b[tdRTMR0+144:], d48("RTMR3 extended at run time, not in the CCEL"))
	cl, err := lab.verify(lab.quote(b), lab.log, nil)
	if err != nil {
		t.Fatal(err)
	}
	el := cl.EventLog
	if fmt.Sprint(el.ReplayedRTMRs, el.UnreplayedRTMRs) != "[0 1 2] [3]" {
		t.Fatalf("replayed %v, unreplayed %v", el.ReplayedRTMRs, el.UnreplayedRTMRs)
	}
	var kinds []string
	for _, e := range el.Events {
		if e.RTMR == 2 && e.Type == "EV_EVENT_TAG" {
			kinds = append(kinds, e.Description)
		}
	}
	if strings.Join(kinds, ",") != "LOADED_IMAGE::LoadOptions,Linux initrd" {
		t.Fatalf("RTMR2 tagged events %v", kinds)
	}
	// Without a log, no event log claims; an SGX quote with a log is refused.
	if cl, err := lab.verify(lab.quote(lab.body()), nil, nil); err != nil || cl.EventLog != nil {
		t.Fatalf("no log: %v %+v", err, cl.EventLog)
	}
	sgx := caseByID(t, "phala-sgx-v3")
	v := sgx.verifier(t)
	_, err = v.Verify(t.Context(), &attest.Evidence{Platform: attest.PlatformSGX, Data: sgx.quote, EventLog: lab.log}, optsAt(sgx.at))
	if checkName(err) != "event_log" || !strings.Contains(err.Error(), "TDX only") {
		t.Fatalf("SGX with a log: %v", err)
	}
}

// TestTDXEventLogPolicyOnSignedQuotes: a policy that pins MRTD and the
// events of RTMR1 and RTMR2, not the RTMR values. The quotes are signed
// with RTMRs that are the replay of a (possibly edited) real log, as a TD
// that booted something else would report them.
func TestTDXEventLogPolicyOnSignedQuotes(t *testing.T) {
	lab := newTDXLab(t)
	var lines []string
	for _, l := range strings.Split(lab.tdxPolicy(t), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "rtmr") || strings.Contains(l, "- rtmr") {
			lines = append(lines, l)
		}
	}
	pol, err := policy.Parse([]byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	if len(pol.Platforms["tdx"].RTMR1) != 0 || len(pol.Platforms["tdx"].EventLog) != 2 {
		t.Fatal("the events-only policy still pins RTMRs")
	}
	// signedFor signs a quote whose RTMRs are the replay of log.
	signedFor := func(log []byte, extra func(b []byte)) []byte {
		lg, err := ccel.Parse(log)
		if err != nil {
			t.Fatal(err)
		}
		b := lab.body()
		for i, mr := range lg.Replay() {
			copy(b[tdRTMR0+48*i:], mr[:])
		}
		if extra != nil {
			extra(b)
		}
		return lab.quote(b)
	}
	// edit changes the SHA-384 digest of the n-th event of an RTMR matching
	// a description ("" = any), as a different binary or command line would.
	edit := func(rtmr int, desc string, n int) []byte {
		lg, _ := ccel.Parse(lab.log)
		c := bytes.Clone(lab.log)
		k := 0
		for i := range lg.Events {
			e := &lg.Events[i]
			if r, ok := e.RTMR(); !ok || r != rtmr || (desc != "" && e.Describe() != desc) {
				continue
			}
			if k++; k == n {
				off := e.Offset + 4 + 4 + 4 + 2 // register, type, count, algorithm
				copy(c[off:], d48("something else"))
				return c
			}
		}
		t.Fatalf("no event %d in RTMR%d", n, rtmr)
		return nil
	}
	f := "platforms.tdx."
	for _, c := range []struct {
		name  string
		quote []byte
		log   []byte
		field string
	}{
		{"as booted", signedFor(lab.log, nil), lab.log, ""},
		{"RTMR1 extended beyond the log", signedFor(lab.log, func(b []byte) { copy(b[tdRTMR0+48:], d48("x")) }), lab.log, f + "event_log[0]"},
		{"another boot application", signedFor(edit(1, "", 4), nil), edit(1, "", 4), f + "event_log[0].events"},
		{"another kernel command line", signedFor(edit(2, "LOADED_IMAGE::LoadOptions", 1), nil), edit(2, "LOADED_IMAGE::LoadOptions", 1), f + "event_log[1].events[0]"},
		{"another initrd: RTMR2 allows other events", signedFor(edit(2, "Linux initrd", 1), nil), edit(2, "Linux initrd", 1), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, err := lab.verify(c.quote, c.log, nil)
			if err != nil {
				t.Fatal(err)
			}
			d := policy.Evaluate(pol, cl, nil, lab.at)
			if c.field == "" {
				if !d.Allow {
					t.Fatalf("%+v", d)
				}
				return
			}
			if d.Allow || d.Rule != policy.RuleEventLog || !strings.HasPrefix(d.Field, c.field) {
				t.Fatalf("got %+v, want event_log denial at %s", d, c.field)
			}
			t.Logf("%s: %s", d.Field, d.Reason)
		})
	}
}
