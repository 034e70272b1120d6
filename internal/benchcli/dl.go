package benchcli

import (
	"fmt"

	"github.com/spf13/cobra"

	dlbench "github.com/ppml/ppml/bench/dl"
	"github.com/ppml/ppml/internal/command"
)

func newBenchDLCmd() *cobra.Command {
	cfg := dlbench.DefaultConfig()
	var asJSON, verbose bool
	c := &cobra.Command{
		Use:   "dl",
		Short: "LeNet-5 on encrypted Fashion-MNIST through the dl engine vs python3-torch in plaintext",
		Long: `Train LeNet-5 (BigDL's layout) on Fashion-MNIST (60,000 images, batches of 128, Adam 0.003
times 0.3 for the third epoch, one thread, 3 epochs by default) twice in one run: through the launcher and the dl engine,
from the four IDX files encrypted under a fresh key and decrypted into memory, and in
Debian's python3-torch on the plaintext files with the same model and hyper-parameters (a
script embedded in ppml-bench). Prints the time of an epoch on each side and their ratio
(target <= 1.05) in wall and CPU seconds, the whole training job end to end, the test
accuracy each side reaches (target >= 0.88 after 3 epochs), and prediction throughput in
images per second (the evaluate job's forward passes vs the same in Python).

Needs Debian's dataset-fashion-mnist (or the files in $PPML_DATASETS) and /usr/bin/python3
with python3-torch. Progress lines go to stderr (not with --json unless --verbose).`,
		Example: `  ppml bench dl
  ppml bench dl --epochs 1 --images 10000 --json`,
		Args: command.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Epochs < 1 || cfg.Epochs > 100 || cfg.BatchSize < 1 || cfg.BatchSize > 65536 || cfg.Images < 0 || cfg.TestImages < 0 {
				return command.Usagef("--epochs must be 1-100, --batch 1-65536, --images and --test-images at least 0")
			}
			if cfg.Optimizer != "sgd" && cfg.Optimizer != "adam" {
				return command.Usagef("--optimizer %q: sgd or adam", cfg.Optimizer)
			}
			if !(cfg.LearningRate > 0 && cfg.LearningRate <= 10) {
				return command.Usagef("--lr %g: must be in (0, 10]", cfg.LearningRate)
			}
			if cfg.LRStepEpochs < 0 || cfg.LRStepEpochs > 0 && !(cfg.LRGamma > 0 && cfg.LRGamma <= 1) {
				return command.Usagef("--lr-step-epochs %d, --lr-gamma %g: the epochs at least 0 (0: a constant rate), the factor in (0, 1]", cfg.LRStepEpochs, cfg.LRGamma)
			}
			if !cmd.Flags().Changed("lr") && cfg.Optimizer == "sgd" {
				cfg.LearningRate = 0.05
			}
			if verbose || !asJSON {
				errw := cmd.ErrOrStderr()
				cfg.Progress = func(line string) { fmt.Fprintln(errw, line) }
			}
			res, err := dlbench.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if asJSON {
				return command.WriteJSON(cmd.OutOrStdout(), res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "LeNet-5 on Fashion-MNIST: %d training and %d test images, batches of %d, %s %g%s, %d epoch(s), one thread\n",
				res.TrainImages, res.TestImages, res.BatchSize, cfg.Optimizer, cfg.LearningRate, schedule(cfg), res.Epochs)
			fmt.Fprintf(w, "  ppml dl engine (libtorch %s, %d encrypted bytes): epoch %.2f s (%.2f CPU s), whole train job %.2f s, test accuracy %.4f, predict %.0f images/s\n",
				res.TorchVersion, res.EncryptedBytes, res.EngineEpochSeconds, res.EngineEpochCPUSeconds, res.EngineTrainJobSeconds, res.EngineAccuracy, res.EnginePredictRate)
			fmt.Fprintf(w, "  python3-torch %s (plaintext):   epoch %.2f s (%.2f CPU s), test accuracy %.4f, predict %.0f images/s\n",
				res.PythonTorch, res.PythonEpochSeconds, res.PythonEpochCPUSeconds, res.PythonAccuracy, res.PythonPredictRate)
			fmt.Fprintf(w, "  ratio engine/python per epoch: %.3f (CPU %.3f; target <= 1.05); end to end incl. decrypt, test, save, encrypt: %.3f\n",
				res.Ratio, res.CPURatio, res.EndToEndRatio)
			return nil
		},
	}
	f := c.Flags()
	f.IntVar(&cfg.Epochs, "epochs", cfg.Epochs, "training epochs on each side")
	f.IntVar(&cfg.BatchSize, "batch", cfg.BatchSize, "batch size")
	f.IntVar(&cfg.Images, "images", 0, "training images (0: all 60,000)")
	f.IntVar(&cfg.TestImages, "test-images", 0, "test images (0: all 10,000)")
	f.StringVar(&cfg.Optimizer, "optimizer", cfg.Optimizer, "sgd or adam")
	f.Float64Var(&cfg.LearningRate, "lr", cfg.LearningRate, "learning rate (default 0.003 for adam, 0.05 for sgd)")
	f.Float64Var(&cfg.Momentum, "momentum", 0.9, "momentum (sgd only)")
	f.IntVar(&cfg.LRStepEpochs, "lr-step-epochs", cfg.LRStepEpochs, "multiply the learning rate by --lr-gamma every this many epochs (0: constant)")
	f.Float64Var(&cfg.LRGamma, "lr-gamma", cfg.LRGamma, "the factor of --lr-step-epochs")
	f.StringVar(&cfg.Script, "script", "", "Python training script to run instead of the embedded one (same arguments and output)")
	f.StringVar(&cfg.TempDir, "tmp", "", "directory for the encrypted inputs and Python's plaintext copy (default: $TMPDIR)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.BoolVar(&verbose, "verbose", false, "progress lines on stderr also with --json")
	return c
}

// schedule describes a step schedule of the learning rate, or nothing for a constant one.
func schedule(cfg dlbench.Config) string {
	if cfg.LRStepEpochs <= 0 {
		return ""
	}
	return fmt.Sprintf(" (times %g every %d epochs)", cfg.LRGamma, cfg.LRStepEpochs)
}
