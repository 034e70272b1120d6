package ccel

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// realLogs are the logs in testdata with the RTMR0-2 values they replay to
// (RTMR3 is zero in all of them).
var realLogs = []struct {
	file, sha256 string
	rtmr         [3]string
}{
	{"ccel_tdvf.bin.gz", "d9cd052549c551fe7038a7fda7d7c8f7eefafbc747fd06140a4c9b3d2db009f5", [3]string{
		"2dc712306a963eadb894ad47dbaa17df44814151555aee11cbb843becca88950ffd079664902e6f22c66f7c8213543f4",
		"0fa3be56af61208bbd179dc7b124988eb929319154663c539d6f46445ecac2fec287075047ff7bd1922829fec28cd3cf",
		"000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"}},
	{"ccel_ovmf.bin.gz", "0e6e0c6a327f658cd73d735cdca29e41adc3b108bf776ae11eeac0aab132d808", [3]string{
		"8566f998798db09443b244c62de9a3041fb02e2e6936c4396d784bba2e90177329ec5aba3bb484404f2ab9cc90abe193",
		"775b9f6bfe99f8a31396f0d0218e67ffa796d3b96ccf961cbb0deba48c79c00f082cda1a5567c1c16305f1fc210c13c6",
		"94eaf7a7bf398ed8d888c91057ae0261802e4f3df084213a76ca7f0b5055ac9d2241de43cd58d9e8b49c503bbf25f34a"}},
	{"ccel_grub.bin.gz", "cab97131de63eb997c6a0608742576cbe0e013d1860a5a1d0f3d4e0426338df7", [3]string{
		"cec0a104f691f60da2387fea3c2de00c4ac035e2bb479ff02edcce69039d9e9907f0b3e55031da3dc7038f423adebd79",
		"6c289e0c62182d41ebe97bdbc9872d10998a08eaa86adcdc684001a363207ee72942c7522cdf00a4bbc3d784bed7b670",
		"08919d017ba0e52cd6d966351c7de16fe76c1d3d3d3da4554239e4c7d16cb8b82a94e7eaea3a0e6e18eb690b999fd31e"}},
	{"ccel_gcp.bin.gz", "8532e4a295ce4d7b2cdddb52ddf8acbedcb81784c04364cbbc0a73328145d97d", [3]string{
		"3300980705adf09d28b707b79699d9874892164280832be2c386a715b6e204e0897fb564a064f810659207ba862b304f",
		"204d49f78d29918fe7b2f694e76653861a0c2a018987d2c3a54266eff737232524cf0af68c4d180e2f8c2c0937f21967",
		"000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"}},
	{"ccel_grub_gke.bin.gz", "ece8c9c14157f19f9a59c151139e89fd47fbca7a8886aed9be0904a0f1e3492b", [3]string{
		"bc9945139042cf2cc75caf920aa57f14884ecfd7e893bccc51250c8ce90eb53ce72741e6adaa18183eb1331a87d4544a",
		"c17cb288a4dee302bb9ed8d27257a168f3264ad68cab53757f37eeaa7039657fa887cad65cf910e0fdc435ff110f8a7b",
		"334aeba2c985f8886cea97d1ecffbd512769d528b9a94009583db667ad7d2faa7d37fa145d75b192ceee2d2f10b2eb6d"}},
}

// ReadTestLog returns a real log from testdata, uncompressed.
func readLog(t testing.TB, name string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
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

func TestRealLogsReplay(t *testing.T) {
	for _, c := range realLogs {
		t.Run(c.file, func(t *testing.T) {
			b := readLog(t, c.file)
			if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != c.sha256 {
				t.Fatalf("testdata changed: sha256 %x", h)
			}
			l, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			mr := l.Replay()
			for i, want := range c.rtmr {
				if got := hex.EncodeToString(mr[i][:]); got != want {
					t.Errorf("RTMR%d %s, want %s", i, got, want)
				}
			}
			if mr[3] != [48]byte{} {
				t.Errorf("RTMR3 %x, want zero", mr[3])
			}
			// The log cut at its end parses to the same events.
			l2, err := Parse(b[:l.Length])
			if err != nil || len(l2.Events) != len(l.Events) || l2.Replay() != mr {
				t.Fatalf("cut at %d: %v", l.Length, err)
			}
			var described, digested int
			for i := range l.Events {
				if l.Events[i].Describe() != "" {
					described++
				}
				if l.Events[i].DataIsDigested() {
					digested++
				}
			}
			t.Logf("spec %s, %d algorithms, %d events in %d bytes (%d described, %d with digested data)", l.SpecVersion, len(l.Algorithms), len(l.Events), l.Length, described, digested)
		})
	}
}

// TestGrubLogContents checks what the shim+grub boot's log says, as a
// reader writing a policy would see it: boot applications (shim, grub, the
// kernel) in RTMR1, the kernel's command line and initrd, measured by its
// EFI stub as tagged events, in RTMR2.
func TestGrubLogContents(t *testing.T) {
	l, err := Parse(readLog(t, "ccel_grub.bin.gz"))
	if err != nil {
		t.Fatal(err)
	}
	var apps int
	var tags, vars []string
	for i := range l.Events {
		e := &l.Events[i]
		rtmr, _ := e.RTMR()
		switch e.Type {
		case EvEFIBootServicesApp:
			apps++
			if rtmr != 1 {
				t.Errorf("boot application in RTMR%d, want RTMR1", rtmr)
			}
		case EvEventTag:
			tags = append(tags, fmt.Sprintf("RTMR%d %s", rtmr, e.Describe()))
		case EvEFIVariableDriverConfig:
			vars = append(vars, e.Describe())
			if !e.DataIsDigested() {
				t.Errorf("variable %s: data is not what was digested", e.Describe())
			}
		}
	}
	if apps != 5 || strings.Join(tags, ",") != "RTMR2 LOADED_IMAGE::LoadOptions,RTMR2 Linux initrd" || strings.Join(vars, ",") != "SecureBoot,PK,KEK,db,dbx" {
		t.Fatalf("apps %d, tagged %v, variables %v", apps, tags, vars)
	}
}

// spec builds a minimal Spec ID event for the given algorithms.
func spec(algs ...Algorithm) []byte {
	var d bytes.Buffer
	d.WriteString(specSignature)
	binary.Write(&d, binary.LittleEndian, uint32(0))
	d.Write([]byte{0, 2, 0, 2})
	binary.Write(&d, binary.LittleEndian, uint32(len(algs)))
	for _, a := range algs {
		binary.Write(&d, binary.LittleEndian, a.ID)
		binary.Write(&d, binary.LittleEndian, uint16(a.Size))
	}
	d.WriteByte(0)
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint32(0))
	binary.Write(&b, binary.LittleEndian, EvNoAction)
	b.Write(make([]byte, 20))
	binary.Write(&b, binary.LittleEndian, uint32(d.Len()))
	b.Write(d.Bytes())
	return b.Bytes()
}

// event encodes a TCG_PCR_EVENT2.
func event(mr, typ uint32, digests []Digest, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, mr)
	binary.Write(&b, binary.LittleEndian, typ)
	binary.Write(&b, binary.LittleEndian, uint32(len(digests)))
	for _, d := range digests {
		binary.Write(&b, binary.LittleEndian, d.Alg)
		b.Write(d.Value)
	}
	binary.Write(&b, binary.LittleEndian, uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}

func sha384Of(s string) []Digest {
	h := make([]byte, 48)
	copy(h, s)
	return []Digest{{AlgSHA384, h}}
}

func TestParseRejects(t *testing.T) {
	sha384 := Algorithm{AlgSHA384, 48}
	good := append(spec(sha384), event(2, EvIPL, sha384Of("a"), []byte("x"))...)
	if l, err := Parse(good); err != nil || len(l.Events) != 1 {
		t.Fatalf("good log: %v", err)
	}
	cases := map[string]struct {
		log  []byte
		want string
	}{
		"empty":                {nil, "truncated PCR index"},
		"not crypto agile":     {event(0, EvNoAction, nil, nil), "event log: Spec ID event"},
		"no SHA-384":           {spec(Algorithm{AlgSHA256, 32}), "no SHA-384"},
		"wrong SHA-384 size":   {spec(Algorithm{AlgSHA384, 32}), "digest size 32, want 48"},
		"algorithm twice":      {spec(sha384, sha384), "listed twice"},
		"register 5":           {append(spec(sha384), event(5, EvIPL, sha384Of("a"), nil)...), "register index 5"},
		"undeclared algorithm": {append(spec(sha384), event(1, EvIPL, []Digest{{AlgSHA256, make([]byte, 32)}}, nil)...), "not declared"},
		"two SHA-384":          {append(spec(sha384, Algorithm{AlgSHA256, 32}), event(1, EvIPL, append(sha384Of("a"), sha384Of("b")...), nil)...), "two digests"},
		"no digest":            {append(spec(sha384), event(1, EvIPL, nil, nil)...), "0 digests"},
		"RTMR event without SHA-384": {append(spec(sha384, Algorithm{AlgSHA256, 32}), event(1, EvIPL, []Digest{{AlgSHA256, make([]byte, 32)}}, nil)...),
			"no SHA-384 digest"},
		"data past the end":     {good[:len(good)-1], "truncated event data"},
		"junk after end marker": {append(append(bytes.Clone(good), bytes.Repeat([]byte{0xff}, 16)...), 'x'), "after the end of the log"},
		"short junk":            {append(bytes.Clone(good), 1, 2, 3), "truncated event"},
	}
	for name, c := range cases {
		_, err := Parse(c.log)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	// EV_NO_ACTION and MRTD records extend nothing.
	l, err := Parse(append(append(spec(sha384), event(0, EvSeparator, sha384Of("m"), nil)...), event(3, EvNoAction, sha384Of("n"), nil)...))
	if err != nil || l.Replay() != [4][48]byte{} {
		t.Fatalf("no-extend records: %v", err)
	}
}

func TestDescribe(t *testing.T) {
	name := []byte{}
	for _, r := range "SecureBoot" {
		name = append(name, byte(r), 0)
	}
	v := make([]byte, 32)
	binary.LittleEndian.PutUint64(v[16:], 10)
	v = append(append(v, name...), 1)
	for _, c := range []struct {
		typ  uint32
		data []byte
		want string
	}{
		{EvEFIVariableDriverConfig, v, "SecureBoot"},
		{EvIPL, []byte("grub_cmd: linux /vmlinuz ro\x00"), "grub_cmd: linux /vmlinuz ro"},
		{EvIPL, []byte("evil\x1b[2Jterminal"), ""},
		{EvEFIPlatformFirmwareBlob2, append([]byte{3}, "Fv1"...), "Fv1"},
		{EvEFIBootServicesApp, []byte("an image"), ""},
		{EvIPL, []byte(strings.Repeat("é", 200)), strings.Repeat("é", 80) + "…"},
		{EvEFIVariableBoot, v[:40], ""},
	} {
		e := Event{Type: c.typ, Data: c.data}
		if got := e.Describe(); got != c.want {
			t.Errorf("%s %q: %q, want %q", TypeName(c.typ), c.data, got, c.want)
		}
	}
}
