package xgboost

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Param is one XGBoost parameter, by XGBoost's own name ("max_depth", "eta", ...). Order is kept
// because XGBoost applies parameters in order (eval_metric may be given more than once).
type Param struct {
	Name  string
	Value string
}

// Config describes a training run.
type Config struct {
	Params  []Param // passed through to XGBoost by name; unknown names fail the run
	Rounds  int     // boosting rounds (1 for a random forest)
	NThread int     // OpenMP threads for training and prediction; ≤ 0 lets OpenMP choose
	// Collective, when set, trains together with the other workers of a
	// distributed job: dtrain holds this worker's rows only.
	Collective *Collective
}

// Defaults applied before Config.Params, which override them: the tree method the issue asks for
// and a fixed seed so that runs are reproducible.
var defaultParams = []Param{
	{"booster", "gbtree"},
	{"tree_method", "hist"},
	{"seed", "0"},
}

// Train builds a booster on dtrain (labels set) for cfg.Rounds rounds. A parameter name that
// XGBoost does not use fails on the first round with XGBoost's own warning text as the error.
func Train(dtrain *DMatrix, cfg Config) (*Booster, error) {
	if cfg.Rounds < 1 {
		return nil, fmt.Errorf("xgboost: rounds must be at least 1, got %d", cfg.Rounds)
	}
	for _, p := range cfg.Params {
		// verbosity is process-wide in XGBoost 1.7 (a booster parameter that sets the global
		// configuration): one job setting it to 0 would silence the unknown-parameter warning
		// for every later job in the process.
		if p.Name == "verbosity" {
			return nil, fmt.Errorf("xgboost: parameter verbosity is process-wide in XGBoost and fixed by ppml at 1 (warnings)")
		}
	}
	if err := setGlobalVerbosity(); err != nil {
		return nil, err
	}
	b, err := NewBooster(dtrain)
	if err != nil {
		return nil, err
	}
	if cfg.Collective != nil {
		if err := b.collectiveInit(cfg.Collective); err != nil {
			b.Close()
			return nil, err
		}
		if cfg.Collective.Joined != nil {
			cfg.Collective.Joined()
		}
		if len(cfg.Collective.Agree) > 0 {
			if err := b.collectiveAgree(cfg.Collective.Agree); err != nil {
				b.collectiveFinalize()
				b.Close()
				return nil, err
			}
		}
		if err := b.train(dtrain, cfg); err != nil {
			// train closed b, and with it the thread the communicator
			// lived on.
			return nil, err
		}
		if f := cfg.Collective.Finish; f != nil {
			b.inCollective = true
			err := f(b)
			b.inCollective = false
			if err != nil {
				b.collectiveFinalize()
				b.Close()
				return nil, err
			}
		}
		if err := b.collectiveFinalize(); err != nil {
			b.Close()
			return nil, err
		}
		return b, nil
	}
	if err := b.train(dtrain, cfg); err != nil {
		return nil, err
	}
	return b, nil
}

// train sets the parameters and runs the rounds; on failure it closes b.
func (b *Booster) train(dtrain *DMatrix, cfg Config) error {
	params := append(append([]Param{}, defaultParams...), cfg.Params...)
	if cfg.NThread > 0 {
		params = append(params, Param{"nthread", strconv.Itoa(cfg.NThread)})
	}
	for _, p := range params {
		if err := b.SetParam(p.Name, p.Value); err != nil {
			b.Close()
			return err
		}
	}
	if names := dtrain.featureNames(); names != nil {
		if err := b.SetFeatureNames(names); err != nil {
			b.Close()
			return err
		}
	}
	for i := 0; i < cfg.Rounds; i++ {
		if err := b.UpdateOneIter(i, dtrain); err != nil {
			b.Close()
			return fmt.Errorf("round %d: %w", i, err)
		}
		if i == 0 {
			if err := b.checkParamsUsed(params); err != nil {
				b.Close()
				return err
			}
		}
	}
	return nil
}

var setGlobalVerbosity = sync.OnceValue(func() error { return setGlobalConfig(`{"verbosity": 1}`) })

// Parameters XGBoost consumes without keeping them in the learner configuration.
var paramsOutsideConfig = map[string]bool{"eval_metric": true}

// checkParamsUsed backs up XGBoost's unused-parameter warning (which a global verbosity of 0
// would silence): every name must appear as a key somewhere in the configuration XGBoost reports
// after configuring.
func (b *Booster) checkParamsUsed(params []Param) error {
	raw, err := b.Config()
	if err != nil {
		return err
	}
	var cfg any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("xgboost: parse configuration: %w", err)
	}
	keys := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				keys[k] = true
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(cfg)
	var unused []string
	for _, p := range params {
		if !keys[p.Name] && !paramsOutsideConfig[p.Name] && !slices.Contains(unused, strconv.Quote(p.Name)) {
			unused = append(unused, strconv.Quote(p.Name))
		}
	}
	if len(unused) > 0 {
		return &Error{Op: "configure", Message: "unknown parameter: Parameters: { " + strings.Join(unused, ", ") + " } are not used."}
	}
	return nil
}

// Forest holds the settings of a random forest built from XGBoost's parallel trees: one round of
// Trees trees, each on a Subsample of rows and ColsampleByNode of features at each split, with
// learning rate 1 so that the forest is the average of its trees (as in XGBoost's random forest
// tutorial).
type Forest struct {
	Trees           int
	Subsample       float64 // 0 → 0.8
	ColsampleByNode float64 // 0 → 0.8
	MaxDepth        int     // 0 → 6
}

// Config turns the forest into a training configuration for the given objective, with extra
// parameters appended (they override the forest's).
func (f Forest) Config(objective string, nthread int, extra ...Param) (Config, error) {
	if f.Trees < 1 {
		return Config{}, fmt.Errorf("xgboost: a forest needs at least one tree, got %d", f.Trees)
	}
	sub, col, depth := f.Subsample, f.ColsampleByNode, f.MaxDepth
	if sub == 0 {
		sub = 0.8
	}
	if col == 0 {
		col = 0.8
	}
	if depth == 0 {
		depth = 6
	}
	if !(sub > 0 && sub <= 1) || !(col > 0 && col <= 1) {
		return Config{}, fmt.Errorf("xgboost: forest subsample %v and colsample_bynode %v must be in (0, 1]", sub, col)
	}
	fl := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	params := []Param{
		{"objective", objective},
		{"learning_rate", "1"},
		{"num_parallel_tree", strconv.Itoa(f.Trees)},
		{"subsample", fl(sub)},
		{"colsample_bynode", fl(col)},
		{"max_depth", strconv.Itoa(depth)},
	}
	return Config{Params: append(params, extra...), Rounds: 1, NThread: nthread}, nil
}
