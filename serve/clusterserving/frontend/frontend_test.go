package frontend_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ppml/ppml/ml/xgboost"
	"github.com/ppml/ppml/serve/clusterserving/frontend"
	"github.com/ppml/ppml/serve/model"
	"github.com/ppml/ppml/serve/model/tabular"
	"github.com/ppml/ppml/serve/servetest"
)

func TestFrontend(t *testing.T) {
	mf, x := servetest.XGBoostModel(t, 3, 10, 3)
	b, _ := xgboost.LoadJSON(mf, 1)
	d, _ := xgboost.NewDMatrix(x[:3], 1, 3, 1)
	p, err := b.Predict(d)
	servetest.Must(t, err)
	d.Close()
	b.Close()
	m, err := tabular.Load(mf, tabular.Options{Name: "xgb", Version: "1", Threads: 1})
	servetest.Must(t, err)
	reg := model.NewRegistry()
	_, err = reg.Add(m, model.BatchOptions{})
	servetest.Must(t, err)
	defer reg.Close()
	stls, ctls := servetest.TLS(t)
	hs := httptest.NewUnstartedServer((&frontend.Frontend{Registry: reg, Model: "xgb", MaxRequestBytes: 4096}).Handler())
	hs.TLS = stls
	hs.StartTLS()
	defer hs.Close()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: ctls}}
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
		resp, err := c.Do(req)
		servetest.Must(t, err)
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	row := fmt.Sprintf(`{"instances":[{"f0":%v,"f1":%v,"f2":%v},{"t":[%v,%v,%v]}]}`, x[0], x[1], x[2], x[0], x[1], x[2])
	for _, path := range []string{"/predict", "/models/xgb/versions/1/predict"} {
		code, body := do("POST", path, row)
		if code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		// Unwrap as BigDL's Python client does: json.loads(json.loads(predictions[i])["value"]).
		var r struct{ Predictions []string }
		servetest.Must(t, json.Unmarshal([]byte(body), &r))
		for _, pred := range r.Predictions {
			var v struct{ Value string }
			servetest.Must(t, json.Unmarshal([]byte(pred), &v))
			var a struct {
				Data  []float32
				Shape []int
			}
			servetest.Must(t, json.Unmarshal([]byte(v.Value), &a))
			if len(a.Data) != 1 || a.Data[0] != p.Values[0] || len(a.Shape) != 0 {
				t.Errorf("%s: prediction %s, XGBoost predicts %v", path, v.Value, p.Values[0])
			}
		}
	}
	if code, body := do("GET", "/models/xgb/versions/1", ""); code != 200 || !strings.Contains(body, `"modelName":"xgb","modelVersion":"1","modelType":"xgboost","features":["f0","f1","f2"]`) {
		t.Errorf("model info: %d %s", code, body)
	}
	for _, c := range []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"POST", "/predict", `{"instances":[`, 400, "wrong content format"},
		{"POST", "/predict", `{"instances":[{"f0":1}]}`, 400, `feature "f1" is missing`},
		{"POST", "/predict", `{"instances":[{"t":[1,2]}]}`, 400, "takes 3 features per row"},
		{"POST", "/predict", `{"instances":[{"t":[` + strings.Repeat("1,", 3000) + `1]}]}`, 400, "larger than 4096 bytes"},
		{"POST", "/models/nope/versions/1/predict", row, 404, `no model named "nope"`},
		{"GET", "/models/xgb/versions/9", "", 404, `has no version "9"`},
		{"GET", "/models/nope", "", 404, "no model named"},
		{"GET", "/predict", "", 405, "no endpoint"},
	} {
		code, body := do(c.method, c.path, c.body)
		var e struct{ Error string }
		if code != c.code || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, c.msg) {
			t.Errorf("%s %s: %d %s, want %d with %q", c.method, c.path, code, body, c.code, c.msg)
		}
	}
}
