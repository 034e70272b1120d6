package deploy

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with its continuation lines
// joined.
type instruction struct {
	line int
	op   string // upper case: FROM, RUN, USER, …
	args string
}

func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur *instruction
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if cur == nil && (l == "" || strings.HasPrefix(l, "#")) {
			continue
		}
		cont := strings.HasSuffix(l, "\\")
		l = strings.TrimSuffix(l, "\\")
		if cur == nil {
			op, args, _ := strings.Cut(l, " ")
			cur = &instruction{line: n, op: strings.ToUpper(op), args: strings.TrimSpace(args)}
		} else if !strings.HasPrefix(l, "#") {
			cur.args += " " + l
		}
		if !cont {
			out = append(out, *cur)
			cur = nil
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestImageRecipes checks what the image recipes promise without Docker
// (none runs here): multi-stage, a final stage that runs as the chart's
// user 65532 with an exec-form entry point, the version and commit
// required, no secret passed as a build argument (they end up in the
// image's history), no download by ADD, the SGX signing key only as a
// BuildKit secret.
func TestImageRecipes(t *testing.T) {
	files, err := filepath.Glob("images/*.Dockerfile")
	if err != nil || len(files) != 3 {
		t.Fatalf("want the 3 recipes, have %v %v", files, err)
	}
	secretArg := regexp.MustCompile(`(?i)(key|token|secret|password|passwd|share)`)
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			ins := parseDockerfile(t, path)
			var froms, lastFrom int
			var user, entry string
			required := map[string]bool{}
			for i, in := range ins {
				switch in.op {
				case "FROM":
					froms++
					lastFrom, user, entry = i, "", ""
				case "USER":
					user = in.args
				case "ENTRYPOINT":
					entry = in.args
				case "ADD":
					t.Errorf("line %d: ADD (use COPY; nothing is downloaded unpinned)", in.line)
				case "ARG":
					name, _, _ := strings.Cut(in.args, "=")
					if secretArg.MatchString(name) {
						t.Errorf("line %d: build argument %s looks like a secret: build arguments are kept in the image history", in.line, name)
					}
				case "RUN":
					for _, a := range []string{"VERSION", "COMMIT"} {
						if strings.Contains(in.args, `test -n "$`+a+`"`) {
							required[a] = true
						}
					}
				}
			}
			if froms < 2 {
				t.Errorf("%d stages: want a build stage and a runtime stage", froms)
			}
			if user != "65532:65532" {
				t.Errorf("final stage USER %q, want 65532:65532 (the chart's runAsUser)", user)
			}
			if !strings.HasPrefix(entry, "[") {
				t.Errorf("final stage ENTRYPOINT %q: want the exec form (no shell)", entry)
			}
			if !required["VERSION"] || !required["COMMIT"] {
				t.Error("VERSION and COMMIT must be required build arguments")
			}
			final := ins[lastFrom].args
			if strings.Contains(path, "sgx") {
				text, _ := os.ReadFile(path)
				if !strings.Contains(string(text), "--mount=type=secret,id=enclave-key,required=true") {
					t.Error("the enclave signing key must come in as a required BuildKit secret")
				}
			} else if !strings.Contains(final, "BASE_IMAGE") {
				t.Errorf("final stage FROM %q: want the distroless BASE_IMAGE", final)
			}
		})
	}
	for _, want := range []string{"gcr.io/distroless/static-debian12:nonroot", "gcr.io/distroless/cc-debian12:nonroot"} {
		found := false
		for _, p := range files {
			b, _ := os.ReadFile(p)
			found = found || strings.Contains(string(b), "ARG BASE_IMAGE="+want)
		}
		if !found {
			t.Errorf("no recipe defaults to %s", want)
		}
	}
}

// TestImageBuildFlagsAreTheMakefiles: the ppml image builds its binary with
// go build directly (make build would also build the cgo benchmarks); its
// flags must stay the Makefile's, or the image's binary would differ from
// a rebuild. The runtime images run `make runtime` itself.
func TestImageBuildFlagsAreTheMakefiles(t *testing.T) {
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `\s*:=\s*(.*)$`).FindStringSubmatch(string(mk))
		if m == nil {
			t.Fatalf("Makefile has no %s", name)
		}
		return strings.TrimSpace(m[1])
	}
	ldflags := strings.NewReplacer("$(VERSION)", "${VERSION}", "$(COMMIT)", "${COMMIT}").Replace(get("LDFLAGS"))
	build := strings.Replace(get("BUILD"), "$(GO) ", "go ", 1)
	build = strings.Replace(build, `"$(LDFLAGS)"`, `"`+ldflags+`"`, 1)
	for _, path := range []string{"images/ppml.Dockerfile", "images/ppml-run-sgx.Dockerfile"} {
		var found bool
		for _, in := range parseDockerfile(t, path) {
			if in.op == "RUN" && strings.Contains(in.args, "./cmd/ppml") && !strings.Contains(in.args, "make ") {
				found = true
				if !strings.Contains(strings.Join(strings.Fields(in.args), " "), build) {
					t.Errorf("%s line %d builds ppml without the Makefile's flags\nwant: %s\nhave: %s", path, in.line, build, in.args)
				}
			}
		}
		if !found {
			t.Errorf("%s: no go build of ./cmd/ppml", path)
		}
	}
	for _, path := range []string{"images/ppml-run.Dockerfile", "images/ppml-run-sgx.Dockerfile"} {
		b, _ := os.ReadFile(path)
		if !strings.Contains(string(b), `make -o deps runtime VERSION="${VERSION}" COMMIT="${COMMIT}" RUNTIME_TAGS="${RUNTIME_TAGS}"`) {
			t.Errorf("%s does not build ppml-run with make runtime", path)
		}
	}
	if !regexp.MustCompile(`(?m)^runtime:`).Match(mk) {
		t.Error("the Makefile has no runtime target")
	}
}
