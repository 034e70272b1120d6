// Package mlcmd is ppml-run's ml command: the ml engine on local files
// (plaintext, or envelopes under a local or kms:// key), without the
// launcher. It lives in the runtime binary because it needs the engine
// (XGBoost, cgo), which the ppml CLI does not link; `ppml ml` hands over to
// it. cmd/ppml-run adds it when the ml engine is built in.
package mlcmd

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	mlengine "github.com/ppml/ppml/engine/ml"
	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/internal/command"
)

// New builds the ml command.
func New() *cobra.Command {
	c := &cobra.Command{
		Use:   "ml",
		Short: "Train, apply and evaluate models on local plaintext or locally-keyed tables",
		Long: `Run the ml engine on local files: train XGBoost (boosted trees, random forests), linear or
logistic regression models; predict; evaluate. With --key FILE every input is a ppml envelope
opened with that key (decrypted in memory) and every output is encrypted under it. The trusted
path for protected data is 'ppml run' with a job manifest using engine ml (docs/ml.md, "Jobs").`,
		Example: `  ppml ml train --algorithm xgboost --objective regression --label medv -o boston.model boston.csv
  ppml ml predict --model boston.model -o predictions.csv boston.csv
  ppml ml evaluate --model boston.model boston.csv --json
  ppml ml export --key owner.key -o boston-xgb.json boston.model.ppml`,
	}
	c.AddCommand(newMLTrainCmd(), newMLPredictCmd(), newMLEvaluateCmd(), newMLExportCmd())
	return c
}

// mlFlags are the flags the three commands share.
type mlFlags struct {
	key, format string
	threads     int
	show        int
	force       bool
	asJSON      bool
}

func (f *mlFlags) bind(c *cobra.Command) {
	c.Flags().StringVar(&f.key, "key", "", "local key `FILE`: inputs are ppml envelopes, outputs are encrypted")
	c.Flags().StringVar(&f.format, "format", "", "table format of the data input: csv or parquet (default: from the file name)")
	c.Flags().IntVar(&f.threads, "threads", 1, "XGBoost threads")
	c.Flags().IntVar(&f.show, "show", 0, "print the first `N` rows as a features | label | prediction table")
	c.Flags().BoolVar(&f.force, "force", false, "replace existing output files")
	c.Flags().BoolVar(&f.asJSON, "json", false, "print the report as JSON")
	command.Positive(c, "threads")
}

func (f *mlFlags) run(cmd *cobra.Command, spec *mlspec.Params, inputs, outputs map[string]string) error {
	files := mlengine.Files{Inputs: inputs, Outputs: outputs, Overwrite: f.force}
	if f.format != "" {
		fm, err := mlspec.ParseFormat(f.format)
		if err != nil {
			return &command.UsageError{Err: fmt.Errorf("--format: %w", err)}
		}
		files.Format = fm
	}
	if f.threads < 1 {
		return command.Usagef("--threads must be at least 1")
	}
	if f.key != "" {
		kw, kr, err := command.LoadKey(cmd, f.key)
		if err != nil {
			return err
		}
		files.Wrapper, files.Resolver = kw, kr
	}
	if err := spec.Validate(); err != nil {
		return &command.UsageError{Err: err}
	}
	res, err := mlengine.RunFiles(context.Background(), mlengine.Config{Threads: f.threads}, spec, files)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if f.asJSON {
		if res.Report != nil {
			return command.WriteJSON(w, res.Report)
		}
		return command.WriteJSON(w, map[string]any{"task": res.Task, "rows": res.Rows, "outputs": outputs})
	}
	if f.show > 0 {
		if err := res.Show(w, f.show); err != nil {
			return err
		}
	}
	if res.Report != nil {
		if err := res.Report.WriteText(w); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "predicted %d rows\n", res.Rows)
	}
	for _, name := range []string{mlspec.OutputModel, mlspec.OutputPredictions, mlspec.OutputReport} {
		if p, ok := outputs[name]; ok {
			fmt.Fprintf(w, "wrote %s to %s\n", name, p)
		}
	}
	return nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	out := strings.Split(s, ",")
	for i := range out {
		out[i] = strings.TrimSpace(out[i])
	}
	return out
}

func newMLTrainCmd() *cobra.Command {
	var f mlFlags
	var algorithm, objective, label, features, out, report string
	var params []string
	var rounds int
	var testFraction float64
	var seed uint64
	c := &cobra.Command{
		Use:   "train --algorithm ALG --label COL -o MODEL [flags] DATA",
		Short: "Train a model on a table and print its metrics on a held-out test split",
		Long: `Train on DATA (CSV or Parquet). Algorithms: xgboost (gbtree, hist), random_forest (XGBoost
parallel trees: one round of num_parallel_tree trees, default 100), linear_regression,
logistic_regression. Objectives: regression, binary (labels 0/1), multiclass (labels 0…k−1).
--param NAME=VALUE passes an XGBoost parameter by XGBoost's own name (an unknown name fails
with XGBoost's message); logistic regression takes l2 and max_iterations. The model file is a
ppml model (docs/formats/ml-model.md) with the features, label and test metrics.`,
		Example: `  ppml ml train --algorithm xgboost --objective regression --label medv \
      --param max_depth=6 --param eta=0.3 --rounds 100 --seed 42 --show 20 -o boston.model boston.csv
  ppml ml train --algorithm random_forest --objective binary --label target \
      --param num_parallel_tree=100 -o forest.model breast_cancer.csv --json
  ppml ml train --key owner.key --algorithm linear_regression --label medv -o linear.model.ppml boston.csv.ppml`,
		Args: command.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return command.Usagef("give the model output with -o FILE")
			}
			spec := &mlspec.Params{Task: mlspec.Train, Algorithm: mlspec.Algorithm(algorithm), Objective: mlspec.Objective(objective),
				Label: label, Features: splitList(features), Rounds: rounds, TestFraction: testFraction, Seed: seed}
			if spec.Objective == "" {
				switch spec.Algorithm {
				case mlspec.LinearRegression:
					spec.Objective = mlspec.Regression
				case mlspec.LogisticRegression:
					spec.Objective = mlspec.Binary
				}
			}
			switch spec.Algorithm {
			case mlspec.RandomForest:
				if cmd.Flags().Changed("rounds") && rounds != 1 {
					return command.Usagef("--rounds: a random forest is one round; set the number of trees with --param num_parallel_tree=N")
				}
				spec.Rounds = 1
			case mlspec.LinearRegression, mlspec.LogisticRegression:
				spec.Rounds = 0
			}
			for _, p := range params {
				n, v, ok := strings.Cut(p, "=")
				if !ok || n == "" {
					return command.Usagef("--param %q: want NAME=VALUE", p)
				}
				spec.Params = append(spec.Params, mlspec.Param{Name: n, Value: v})
			}
			outputs := map[string]string{mlspec.OutputModel: out}
			if report != "" {
				outputs[mlspec.OutputReport] = report
			}
			return f.run(cmd, spec, map[string]string{mlspec.InputTrain: args[0]}, outputs)
		},
	}
	f.bind(c)
	c.Flags().StringVar(&algorithm, "algorithm", "", "xgboost, random_forest, linear_regression or logistic_regression")
	c.Flags().StringVar(&objective, "objective", "", "regression, binary or multiclass (default for linear models: theirs)")
	c.Flags().StringVar(&label, "label", "", "label `COLUMN`")
	c.Flags().StringVar(&features, "features", "", "feature columns, comma-separated (default: every column but the label)")
	c.Flags().StringArrayVar(&params, "param", nil, "model parameter `NAME=VALUE` (repeatable)")
	c.Flags().IntVar(&rounds, "rounds", mlspec.DefaultRounds, "XGBoost boosting rounds")
	c.Flags().Float64Var(&testFraction, "test-fraction", mlspec.DefaultTestFraction, "fraction of rows held out for metrics (0: none)")
	c.Flags().Uint64Var(&seed, "seed", 0, "seed of the train/test split")
	c.Flags().StringVarP(&out, "output", "o", "", "model output `FILE`")
	c.Flags().StringVar(&report, "report", "", "also write the JSON report to `FILE`")
	command.Positive(c, "rounds")
	return c
}

func newMLPredictCmd() *cobra.Command {
	var f mlFlags
	var model, out string
	c := &cobra.Command{
		Use:   "predict --model MODEL -o OUT DATA",
		Short: "Apply a model to a table: the input columns plus prediction column(s)",
		Long: `Predict for every row of DATA. The output keeps the input's columns and adds "prediction"
(regression value or class), and "probability" (binary: of class 1) or "probability_0"…
(multiclass). OUT is CSV or Parquet by its name (Parquet output needs Parquet input).
MODEL is a ppml model, or an XGBoost JSON model saved by Python (with feature names).`,
		Example: `  ppml ml predict --model boston.model -o predictions.csv boston.csv --show 10
  ppml ml predict --key owner.key --model boston.model.ppml -o predictions.csv.ppml boston.csv.ppml`,
		Args: command.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if model == "" || out == "" {
				return command.Usagef("give --model FILE and -o FILE")
			}
			spec := &mlspec.Params{Task: mlspec.Predict}
			return f.run(cmd, spec, map[string]string{mlspec.InputModel: model, mlspec.InputData: args[0]},
				map[string]string{mlspec.OutputPredictions: out})
		},
	}
	f.bind(c)
	c.Flags().StringVar(&model, "model", "", "model `FILE`")
	c.Flags().StringVarP(&out, "output", "o", "", "predictions output `FILE` (.csv or .parquet)")
	return c
}

func newMLEvaluateCmd() *cobra.Command {
	var f mlFlags
	var model, label, report, preds string
	c := &cobra.Command{
		Use:   "evaluate --model MODEL [--report FILE] DATA",
		Short: "Score a model on a labelled table: RMSE, MAE, R² or accuracy, AUC, log-loss, confusion matrix",
		Example: `  ppml ml evaluate --model boston.model boston.csv
  ppml ml evaluate --model py-model.json --label medv boston.csv --json
  ppml ml evaluate --key owner.key --model forest.model.ppml --report eval.json.ppml breast_cancer.csv.ppml`,
		Args: command.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if model == "" {
				return command.Usagef("give the model with --model FILE")
			}
			outputs := map[string]string{}
			if report != "" {
				outputs[mlspec.OutputReport] = report
			}
			if preds != "" {
				outputs[mlspec.OutputPredictions] = preds
			}
			spec := &mlspec.Params{Task: mlspec.Evaluate, Label: label}
			return f.run(cmd, spec, map[string]string{mlspec.InputModel: model, mlspec.InputData: args[0]}, outputs)
		},
	}
	f.bind(c)
	c.Flags().StringVar(&model, "model", "", "model `FILE`")
	c.Flags().StringVar(&label, "label", "", "label `COLUMN` (default: the model's)")
	c.Flags().StringVar(&report, "report", "", "write the JSON report to `FILE`")
	c.Flags().StringVar(&preds, "predictions", "", "also write the predictions table to `FILE`")
	return c
}

func newMLExportCmd() *cobra.Command {
	var key, out string
	var force bool
	c := &cobra.Command{
		Use:   "export [--key FILE] -o OUT MODEL",
		Short: "Write the XGBoost (or linear) model inside a ppml model file, for Python",
		Long: `Write the model inside a ppml model file byte for byte, in plaintext (like ppml decrypt):
an XGBoost JSON model for xgboost and random_forest, the ppml linear JSON for linear models.
Python's xgboost loads it with Booster(model_file=OUT) and predicts bit-identically. With
--key FILE, MODEL is a ppml envelope opened with that key. Do not extract the model with jq:
it rewrites 1.0 as 1, which XGBoost's loader refuses.`,
		Example: `  ppml ml export --key owner.key -o boston-xgb.json out/boston-xgboost.model.ppml
  /usr/bin/python3 -c 'import xgboost as xgb; print(xgb.Booster(model_file="boston-xgb.json").feature_names)'`,
		Args: command.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return command.Usagef("give the output with -o FILE")
			}
			var kr envelope.KeyResolver
			if key != "" {
				_, r, err := command.LoadKey(cmd, key)
				if err != nil {
					return err
				}
				kr = r
			}
			m, err := mlengine.ExportFile(args[0], out, kr, force)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote the %s model (features: %d, label %q) to %s\n", m.Algorithm, len(m.Features), m.Label, out)
			return nil
		},
	}
	c.Flags().StringVar(&key, "key", "", "local key `FILE` to open MODEL as a ppml envelope")
	c.Flags().StringVarP(&out, "output", "o", "", "output `FILE` (plaintext)")
	c.Flags().BoolVar(&force, "force", false, "replace an existing output file")
	return c
}
