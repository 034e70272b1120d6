package xgboost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// ModelInfo summarizes a validated XGBoost JSON model.
type ModelInfo struct {
	Version      [3]int   // XGBoost version that wrote the model
	Objective    string   // e.g. "reg:squarederror"
	NumFeature   int      // features the model reads
	NumClass     int      // 0 for regression and binary classification
	NumTrees     int      // trees in the model (rounds × parallel trees × classes)
	FeatureNames []string // empty if the model has none
}

// Objectives this package accepts in a loaded model. Others may well work in XGBoost, but each
// one has its own configuration for XGBoost to trust; these are the ones documented and tested.
var knownObjectives = map[string]bool{
	"reg:squarederror": true, "reg:logistic": true, "reg:absoluteerror": true,
	"binary:logistic": true, "binary:logitraw": true,
	"multi:softprob": true, "multi:softmax": true,
}

// maxFeatures bounds num_feature so that a hostile model cannot make XGBoost allocate per-feature
// state of absurd size.
const maxFeatures = 1 << 20

// ValidateModelJSON checks that b is an XGBoost 1.x JSON model of a gbtree booster that XGBoost
// can evaluate without trusting the document: every tree's arrays have num_nodes entries, its
// nodes form a tree rooted at 0 (children in range, each reached once, parents consistent),
// split features exist, no categorical splits, and tree_info names valid output groups.
// It returns the model re-encoded canonically (duplicate keys resolved, number literals kept
// byte for byte, so tree thresholds are unchanged) — that is what LoadJSON hands to XGBoost.
func ValidateModelJSON(b []byte) ([]byte, *ModelInfo, error) {
	doc, err := decodeJSON(b)
	if err != nil {
		return nil, nil, fmt.Errorf("xgboost model: not valid JSON: %w", err)
	}
	// XGBoost's JSON parser recurses per nesting level; its models nest about 7 deep.
	if depth(doc) > maxDepth {
		return nil, nil, fmt.Errorf("xgboost model: JSON nests deeper than %d levels", maxDepth)
	}
	info, err := validateModel(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("xgboost model: %w", err)
	}
	canon, err := json.Marshal(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("xgboost model: re-encode: %w", err)
	}
	return canon, info, nil
}

const maxDepth = 32

func depth(v any) int {
	d := 0
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			d = max(d, depth(e))
		}
	case []any:
		for _, e := range v {
			d = max(d, depth(e))
		}
	default:
		return 0
	}
	return d + 1
}

func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("trailing data after the JSON document")
	}
	return doc, nil
}

// path-aware accessors: each failure names the field.

func obj(v any, path string) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: want an object, got %s", path, kind(v))
	}
	return m, nil
}

func field(m map[string]any, name, path string) (any, error) {
	v, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("%s.%s: missing", path, name)
	}
	return v, nil
}

func objField(m map[string]any, name, path string) (map[string]any, error) {
	v, err := field(m, name, path)
	if err != nil {
		return nil, err
	}
	return obj(v, path+"."+name)
}

func arrField(m map[string]any, name, path string) ([]any, error) {
	v, err := field(m, name, path)
	if err != nil {
		return nil, err
	}
	a, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s.%s: want an array, got %s", path, name, kind(v))
	}
	return a, nil
}

func strField(m map[string]any, name, path string) (string, error) {
	v, err := field(m, name, path)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s.%s: want a string, got %s", path, name, kind(v))
	}
	return s, nil
}

// intString reads XGBoost's parameter encoding: integers as decimal strings.
func intString(m map[string]any, name, path string, lo, hi int64) (int, error) {
	s, err := strField(m, name, path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s.%s: %q is not an integer in [%d, %d]", path, name, s, lo, hi)
	}
	return int(n), nil
}

func integer(v any, path string, lo, hi int64) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%s: want an integer, got %s", path, kind(v))
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil || i < lo || i > hi {
		return 0, fmt.Errorf("%s: %s is not an integer in [%d, %d]", path, n, lo, hi)
	}
	return i, nil
}

func intArray(m map[string]any, name, path string, n int, lo, hi int64) ([]int64, error) {
	a, err := arrField(m, name, path)
	if err != nil {
		return nil, err
	}
	if len(a) != n {
		return nil, fmt.Errorf("%s.%s: %d entries for %d nodes", path, name, len(a), n)
	}
	out := make([]int64, n)
	for i, v := range a {
		if out[i], err = integer(v, fmt.Sprintf("%s.%s[%d]", path, name, i), lo, hi); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func numArray(m map[string]any, name, path string, n int) error {
	a, err := arrField(m, name, path)
	if err != nil {
		return err
	}
	if len(a) != n {
		return fmt.Errorf("%s.%s: %d entries for %d nodes", path, name, len(a), n)
	}
	for i, v := range a {
		num, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("%s.%s[%d]: want a number, got %s", path, name, i, kind(v))
		}
		// The value itself stays out of the message: thresholds and leaf values are derived
		// from the (protected) training data.
		f, err := strconv.ParseFloat(string(num), 32)
		if err != nil || math.IsInf(f, 0) {
			return fmt.Errorf("%s.%s[%d]: not a finite float32", path, name, i)
		}
	}
	return nil
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func validateModel(doc any) (*ModelInfo, error) {
	root, err := obj(doc, "model")
	if err != nil {
		return nil, err
	}
	info := &ModelInfo{}
	ver, err := arrField(root, "version", "model")
	if err != nil {
		return nil, err
	}
	if len(ver) != 3 {
		return nil, fmt.Errorf("model.version: want [major, minor, patch], got %d entries", len(ver))
	}
	for i, v := range ver {
		n, err := integer(v, fmt.Sprintf("model.version[%d]", i), 0, 1000)
		if err != nil {
			return nil, err
		}
		info.Version[i] = int(n)
	}
	if info.Version[0] != 1 || info.Version[1] > 7 {
		return nil, fmt.Errorf("model.version: written by XGBoost %d.%d.%d; this build reads models of XGBoost 1.0 to 1.7",
			info.Version[0], info.Version[1], info.Version[2])
	}
	learner, err := objField(root, "learner", "model")
	if err != nil {
		return nil, err
	}
	const lp = "model.learner"
	mp, err := objField(learner, "learner_model_param", lp)
	if err != nil {
		return nil, err
	}
	if info.NumFeature, err = intString(mp, "num_feature", lp+".learner_model_param", 1, maxFeatures); err != nil {
		return nil, err
	}
	if info.NumClass, err = intString(mp, "num_class", lp+".learner_model_param", 0, 1<<16); err != nil {
		return nil, err
	}
	if _, ok := mp["num_target"]; ok {
		if _, err := intString(mp, "num_target", lp+".learner_model_param", 1, 1); err != nil {
			return nil, err
		}
	}
	bs, err := strField(mp, "base_score", lp+".learner_model_param")
	if err != nil {
		return nil, err
	}
	if f, err := strconv.ParseFloat(bs, 32); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("%s.learner_model_param.base_score: not a finite number", lp)
	}
	objective, err := objField(learner, "objective", lp)
	if err != nil {
		return nil, err
	}
	if info.Objective, err = strField(objective, "name", lp+".objective"); err != nil {
		return nil, err
	}
	if !knownObjectives[info.Objective] {
		return nil, fmt.Errorf("%s.objective.name: objective %q is not supported", lp, info.Objective)
	}
	multi := info.Objective == "multi:softprob" || info.Objective == "multi:softmax"
	if multi != (info.NumClass >= 2) {
		return nil, fmt.Errorf("%s: objective %s with num_class %d", lp, info.Objective, info.NumClass)
	}
	if err := featureInfo(learner, lp, info); err != nil {
		return nil, err
	}
	gb, err := objField(learner, "gradient_booster", lp)
	if err != nil {
		return nil, err
	}
	name, err := strField(gb, "name", lp+".gradient_booster")
	if err != nil {
		return nil, err
	}
	if name != "gbtree" {
		return nil, fmt.Errorf("%s.gradient_booster.name: booster %q is not supported (only gbtree)", lp, name)
	}
	return info, validateTrees(gb, lp+".gradient_booster", info)
}

func featureInfo(learner map[string]any, lp string, info *ModelInfo) error {
	for _, key := range []string{"feature_names", "feature_types"} {
		v, ok := learner[key]
		if !ok {
			continue
		}
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s.%s: want an array, got %s", lp, key, kind(v))
		}
		if len(a) != 0 && len(a) != info.NumFeature {
			return fmt.Errorf("%s.%s: %d entries for %d features", lp, key, len(a), info.NumFeature)
		}
		for i, e := range a {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("%s.%s[%d]: want a string, got %s", lp, key, i, kind(e))
			}
			if key == "feature_names" {
				info.FeatureNames = append(info.FeatureNames, s)
			} else if s != "q" && s != "float" && s != "int" && s != "i" {
				return fmt.Errorf("%s.feature_types[%d]: type %q is not supported (categorical features are not)", lp, i, s)
			}
		}
	}
	return nil
}

func validateTrees(gb map[string]any, gp string, info *ModelInfo) error {
	model, err := objField(gb, "model", gp)
	if err != nil {
		return err
	}
	mp := gp + ".model"
	param, err := objField(model, "gbtree_model_param", mp)
	if err != nil {
		return err
	}
	numTrees, err := intString(param, "num_trees", mp+".gbtree_model_param", 0, 1<<24)
	if err != nil {
		return err
	}
	parallel, err := intString(param, "num_parallel_tree", mp+".gbtree_model_param", 1, 1<<16)
	if err != nil {
		return err
	}
	if v, ok := param["size_leaf_vector"]; ok && v != "0" {
		return fmt.Errorf("%s.gbtree_model_param.size_leaf_vector: vector leaves are not supported", mp)
	}
	groups := max(info.NumClass, 1)
	if numTrees%(parallel*groups) != 0 {
		return fmt.Errorf("%s.gbtree_model_param: %d trees is not a whole number of rounds of %d parallel trees × %d groups",
			mp, numTrees, parallel, groups)
	}
	trees, err := arrField(model, "trees", mp)
	if err != nil {
		return err
	}
	if len(trees) != numTrees {
		return fmt.Errorf("%s.trees: %d trees, gbtree_model_param.num_trees says %d", mp, len(trees), numTrees)
	}
	if _, err := intArray(model, "tree_info", mp, numTrees, 0, int64(groups-1)); err != nil {
		return err
	}
	info.NumTrees = numTrees
	for t, tv := range trees {
		if err := validateTree(tv, fmt.Sprintf("%s.trees[%d]", mp, t), t, info.NumFeature); err != nil {
			return err
		}
	}
	return nil
}

// rootParent is how XGBoost writes the root's parent (its invalid node id with the
// is-left-child bit cleared).
const rootParent = math.MaxInt32

func validateTree(tv any, path string, id, numFeature int) error {
	tree, err := obj(tv, path)
	if err != nil {
		return err
	}
	idv, err := field(tree, "id", path)
	if err != nil {
		return err
	}
	// XGBoost places each tree at index "id"; a duplicate would leave another slot empty.
	if _, err := integer(idv, path+".id", int64(id), int64(id)); err != nil {
		return err
	}
	tp, err := objField(tree, "tree_param", path)
	if err != nil {
		return err
	}
	n, err := intString(tp, "num_nodes", path+".tree_param", 1, 1<<26)
	if err != nil {
		return err
	}
	if _, err := intString(tp, "num_deleted", path+".tree_param", 0, 0); err != nil {
		return err
	}
	if v, ok := tp["size_leaf_vector"]; ok && v != "0" {
		return fmt.Errorf("%s.tree_param.size_leaf_vector: vector leaves are not supported", path)
	}
	left, err := intArray(tree, "left_children", path, n, -1, int64(n-1))
	if err != nil {
		return err
	}
	right, err := intArray(tree, "right_children", path, n, -1, int64(n-1))
	if err != nil {
		return err
	}
	parents, err := intArray(tree, "parents", path, n, 0, rootParent)
	if err != nil {
		return err
	}
	split, err := intArray(tree, "split_indices", path, n, 0, math.MaxUint32)
	if err != nil {
		return err
	}
	if _, err := intArray(tree, "default_left", path, n, 0, 1); err != nil {
		return err
	}
	for _, name := range []string{"split_conditions", "base_weights", "loss_changes", "sum_hessian"} {
		if err := numArray(tree, name, path, n); err != nil {
			return err
		}
	}
	if _, ok := tree["split_type"]; ok {
		if _, err := intArray(tree, "split_type", path, n, 0, 0); err != nil {
			return fmt.Errorf("%w (categorical splits are not supported)", err)
		}
	}
	for _, name := range []string{"categories", "categories_nodes", "categories_segments", "categories_sizes"} {
		if v, ok := tree[name]; ok {
			if a, isArr := v.([]any); !isArr || len(a) != 0 {
				return fmt.Errorf("%s.%s: categorical splits are not supported", path, name)
			}
		}
	}
	// Walk from the root: every node must be reached exactly once, so traversal in XGBoost
	// terminates and stays inside the arrays.
	if parents[0] != rootParent {
		return fmt.Errorf("%s.parents[0]: root's parent is %d, want %d", path, parents[0], rootParent)
	}
	seen := make([]bool, n)
	seen[0] = true
	stack := []int{0}
	reached := 1
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		l, r := left[i], right[i]
		if l == -1 && r == -1 {
			continue
		}
		if l == -1 || r == -1 {
			return fmt.Errorf("%s: node %d has one child (left %d, right %d)", path, i, l, r)
		}
		// XGBoost's predictor takes the right child to be the left one plus one (predict_fn.h:
		// LeftChild() + !(fvalue < SplitCond())): any other layout would predict from the wrong
		// node, or read past the tree when the left child is its last node.
		if r != l+1 {
			return fmt.Errorf("%s: node %d's right child %d does not follow its left child %d", path, i, r, l)
		}
		if split[i] >= int64(numFeature) {
			return fmt.Errorf("%s.split_indices[%d]: feature %d, model has %d features", path, i, split[i], numFeature)
		}
		for _, c := range []int64{l, r} {
			if seen[c] {
				return fmt.Errorf("%s: node %d is reached twice (not a tree)", path, c)
			}
			if parents[c] != int64(i) {
				return fmt.Errorf("%s.parents[%d]: %d, but node %d links to it", path, c, parents[c], i)
			}
			seen[c] = true
			reached++
			stack = append(stack, int(c))
		}
	}
	if reached != n {
		return fmt.Errorf("%s: %d of %d nodes are not reachable from the root", path, n-reached, n)
	}
	return nil
}
