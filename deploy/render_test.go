package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/yaml"
)

// chartDir is the chart, relative to this package: the test runs in its
// own directory wherever the repository lives.
const chartDir = "helm/ppml"

const (
	releaseName = "prod"
	namespace   = "ppml"
)

// kubeVersion is the oldest Kubernetes the chart declares (Chart.yaml
// kubeVersion) that has every field it uses.
var kubeVersion = chartutil.KubeVersion{Version: "v1.29.0", Major: "1", Minor: "29"}

// scheme knows exactly the API groups the chart may render; a kind outside
// them fails decoding, as does any field the Go types do not have.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme,
		networkingv1.AddToScheme, rbacv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// strict refuses unknown and duplicate fields (sigs.k8s.io/yaml's strict
// mode) as well as values of the wrong type.
var strict = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

// rendered is one release's objects, by kind and name.
type rendered struct {
	objs  []runtime.Object
	texts map[string]string // "Kind/name" -> the YAML it came from
	notes string            // NOTES.txt, what helm install prints
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart %s: %v", chartDir, err)
	}
	return c
}

// readValues reads a values file of the chart's ci/ directory.
func readValues(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "ci", name))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// render renders the chart as `helm template` does (values coalesced with
// the chart's, validated against values.schema.json) and returns the
// objects, or the first error.
func render(c *chart.Chart, vals map[string]any) (*rendered, error) {
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = kubeVersion
	top, err := chartutil.ToRenderValues(c, vals, chartutil.ReleaseOptions{Name: releaseName, Namespace: namespace, IsInstall: true}, caps)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(c, top)
	if err != nil {
		return nil, err
	}
	out := &rendered{texts: map[string]string{}}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, file := range names {
		if strings.HasSuffix(file, "/NOTES.txt") {
			out.notes = files[file]
		}
		if !strings.HasSuffix(file, ".yaml") {
			continue // NOTES.txt, helpers
		}
		docs := releaseutil.SplitManifests(files[file])
		keys := make([]string, 0, len(docs))
		for k := range docs {
			keys = append(keys, k)
		}
		sort.Sort(releaseutil.BySplitManifestsOrder(keys))
		for _, k := range keys {
			doc := docs[k]
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			obj, gvk, err := strict.Decode([]byte(doc), nil, nil)
			if err != nil {
				return nil, fmt.Errorf("%s: strict decoding: %w\n%s", file, err, doc)
			}
			key := gvk.Kind + "/" + objName(obj)
			if _, dup := out.texts[key]; dup {
				return nil, fmt.Errorf("%s: %s rendered twice", file, key)
			}
			out.texts[key] = doc
			out.objs = append(out.objs, obj)
		}
	}
	return out, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func objName(o runtime.Object) string {
	if m, ok := o.(interface{ GetName() string }); ok {
		return m.GetName()
	}
	return "?"
}

func mustRender(t *testing.T, c *chart.Chart, vals map[string]any) *rendered {
	t.Helper()
	r, err := render(c, vals)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// get returns the object of that kind and name, typed.
func get[T runtime.Object](t *testing.T, r *rendered, name string) T {
	t.Helper()
	for _, o := range r.objs {
		if v, ok := o.(T); ok && objName(o) == name {
			return v
		}
	}
	var zero T
	t.Fatalf("no %T named %q rendered; have %s", zero, name, r.keys())
	return zero
}

func all[T runtime.Object](r *rendered) []T {
	var out []T
	for _, o := range r.objs {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func (r *rendered) keys() string {
	k := make([]string, 0, len(r.texts))
	for n := range r.texts {
		k = append(k, n)
	}
	sort.Strings(k)
	return strings.Join(k, ", ")
}

// merged returns base with the values of over laid on top (maps merged
// key by key, everything else replaced), without changing either.
func merged(base, over map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = merged(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}
