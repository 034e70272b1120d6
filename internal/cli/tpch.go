package cli

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/internal/progress"
	"github.com/ppml/ppml/tpch/dbgen"
	"github.com/ppml/ppml/tpch/tpchparquet"
)

func init() { register(newTPCHCmd) }

func newTPCHCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "tpch",
		Short: "TPC-H data generation (DuckDB's dbgen, in Go)",
		Example: `  ppml tpch generate --sf 1 -o tpch-sf1/
  ppml tpch generate --sf 0.1 -o enc/ --key owner.key`,
	}
	c.AddCommand(newTPCHGenerateCmd())
	return c
}

func newTPCHGenerateCmd() *cobra.Command {
	var (
		sf                   float64
		out, tablesFlag, key string
		codec, variant       string
		workers              int
		force, asJSON        bool
	)
	c := &cobra.Command{
		Use:   "generate --sf N -o DIR",
		Short: "Generate the TPC-H tables as Parquet files",
		Long: `Generate the eight TPC-H tables at scale factor N, row for row as DuckDB's dbgen
(CALL dbgen(sf=N) in DuckDB 1.4) does, or as TPC's dbgen does with --variant tpc
(the two differ only in comments and addresses), into DIR/<table>.parquet with
DuckDB's column types. Files are written atomically; existing files are kept unless
--force. With --key each file is encrypted into the ppml envelope as
DIR/<table>.parquet.ppml and no plaintext touches the disk.

On a terminal, a job that runs for more than a second shows one progress line on
stderr: the tables being generated with their rows done and expected (TPC-H fixes
every table's row count for the scale factor), the tables complete, the Parquet bytes
written, their rate, and the time left, estimated from the time taken so far and the
share of rows still to do (each table's rows weighted by the specification's typical
row size). Nothing is shown when stderr is not a terminal or with --json.`,
		Example: `  ppml tpch generate --sf 1 -o tpch-sf1/
  ppml tpch generate --sf 0.01 -o small/ --tables lineitem,orders --json
  ppml tpch generate --sf 10 -o enc/ --key owner.key --compression zstd`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("give the output directory with -o DIR")
			}
			if !cmd.Flags().Changed("sf") {
				return usageErrorf("give the scale factor with --sf N")
			}
			if sf >= 1 && sf != float64(int64(sf)) {
				return usageErrorf("--sf %g: scale factors of 1 or more must be integers (dbgen truncates them)", sf)
			}
			var tables []dbgen.Table
			if tablesFlag != "" {
				for _, n := range strings.Split(tablesFlag, ",") {
					t, err := dbgen.ParseTable(strings.TrimSpace(n))
					if err != nil {
						return &UsageError{Err: err}
					}
					if !slices.Contains(tables, t) {
						tables = append(tables, t)
					}
				}
			} else {
				tables = dbgen.Tables
			}
			var o tpchparquet.DirOptions
			switch codec {
			case "snappy", "zstd", "lz4raw", "none":
				o.Compression = codec
			default:
				return usageErrorf("--compression %q: want snappy, zstd, lz4raw or none", codec)
			}
			o.Workers = workers
			o.Overwrite = force
			v, err := dbgen.ParseVariant(variant)
			if err != nil {
				return &UsageError{Err: err}
			}
			g, err := dbgen.NewVariant(sf, v)
			if err != nil {
				return &UsageError{Err: err}
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("create output directory: %w", err)
			}
			if key != "" {
				kw, _, err := loadKey(cmd, key)
				if err != nil {
					return err
				}
				o.Suffix = ".ppml"
				o.Create = func(path string, overwrite bool) (tpchparquet.Sink, error) {
					fw, err := envelope.CreateFile(path, kw, &envelope.Options{ContentType: envelope.TypeParquet}, overwrite)
					if err != nil {
						return nil, err
					}
					return envelopeSink{fw}, nil
				}
			}
			var total int64
			parts := make([]progress.Part, len(tables))
			index := map[dbgen.Table]int{}
			for i, t := range tables {
				total += g.RowCount(t)
				parts[i] = progress.Part{Name: t.String(), Total: g.RowCount(t), Weight: float64(t.TypicalRowSize()), Unit: "rows"}
				index[t] = i
			}
			var prog *progress.Parts
			if e, ok := cmd.ErrOrStderr().(*os.File); ok {
				prog = progress.NewParts(e, fmt.Sprintf("tpch SF %g", sf), parts, asJSON)
			}
			if prog != nil {
				o.Progress = func(t dbgen.Table, rows int64) { prog.Set(index[t], rows) }
				o.Wrote = prog.Add
				o.Committed = func(f tpchparquet.File) { prog.Finish(index[f.Table]) }
			}
			start := time.Now()
			files, err := tpchparquet.WriteDir(cmd.Context(), g, out, tables, o)
			if err != nil {
				prog.Clear()
				return fmt.Errorf("generate TPC-H SF %g: %w", sf, err)
			}
			prog.Done()
			elapsed := time.Since(start)
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{
					"sf": sf, "variant": v.String(), "dir": out, "encrypted": key != "", "files": files, "rows": total,
					"seconds": elapsed.Seconds(),
				})
			}
			w := cmd.OutOrStdout()
			for _, f := range files {
				fmt.Fprintf(w, "%-9s %12d rows %14d bytes  %s\n", f.Name, f.Rows, f.Bytes, f.Path)
			}
			fmt.Fprintf(w, "generated TPC-H SF %g: %d rows in %.1fs\n", sf, total, elapsed.Seconds())
			return nil
		},
	}
	c.Flags().Float64Var(&sf, "sf", 0, "scale factor (0.01 … 10 and beyond; integers from 1)")
	c.Flags().StringVarP(&out, "output", "o", "", "output directory (created if missing)")
	c.Flags().StringVar(&tablesFlag, "tables", "", "comma-separated tables to generate (default: all eight)")
	c.Flags().StringVar(&key, "key", "", "encrypt each file into the ppml envelope under this key file (or kms:// reference)")
	c.Flags().StringVar(&codec, "compression", "snappy", "Parquet compression: snappy, zstd, lz4raw or none")
	c.Flags().IntVar(&workers, "workers", 0, "generator goroutines (default: GOMAXPROCS)")
	c.Flags().StringVar(&variant, "variant", "duckdb", "whose comments and addresses: duckdb (DuckDB 1.4, matches its published answers) or tpc (TPC dbgen, 300 MiB text pool)")
	c.Flags().BoolVar(&force, "force", false, "replace existing files")
	c.Flags().BoolVar(&asJSON, "json", false, "print a JSON summary (no progress line)")
	return c
}

// envelopeSink adapts an envelope file writer: Close commits it.
type envelopeSink struct{ fw *envelope.FileWriter }

func (s envelopeSink) Write(p []byte) (int, error) { return s.fw.Write(p) }
func (s envelopeSink) Commit() error               { return s.fw.Close() }
func (s envelopeSink) Abort() error                { return s.fw.Abort() }
