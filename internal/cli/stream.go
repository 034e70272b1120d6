package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml/ppml/atomicfile"
	"github.com/ppml/ppml/stream/record"
)

func init() { register(newStreamCmd) }

func newStreamCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "stream",
		Short: "Encrypted stream records: seal lines into record files and open them again",
		Long: `ppml stream works with encrypted stream records (docs/formats/stream-record.md), the
messages the stream engine reads from Kafka, NATS JetStream or Redis Streams and, in
bounded mode, from record files. Run streaming jobs with ppml run (docs/stream.md).`,
		Example: `  ppml key generate -o stream.key
  ppml stream encrypt --key stream.key --stream text --lines 100 -o text.records cc0-1.0.txt
  ppml stream decrypt --key stream.key --stream text text.records | head`,
	}
	c.AddCommand(newStreamEncryptCmd(), newStreamDecryptCmd())
	return c
}

func newStreamEncryptCmd() *cobra.Command {
	var key, out, streamName, start string
	var partitions, lines int
	var step time.Duration
	var end, force bool
	c := &cobra.Command{
		Use:   "encrypt --key FILE --stream NAME -o OUT.records INPUT",
		Short: "Seal the lines of a text, JSON-lines or CSV file into a record file",
		Long: `Groups the input's lines into records (--lines per record), deals the records
round-robin over --partitions, and seals each for the stream and partition under a
fresh data key wrapped by --key. Each record carries an event time: --time for the
first, plus --time-step for each next one. With --end, each partition closes with
an end record (the writer is done: its windows may all fire).`,
		Example: `  ppml key generate -o stream.key
  ppml stream encrypt --key stream.key --stream text --lines 100 -o text.records cc0-1.0.txt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if streamName == "" {
				return usageErrorf("give the stream with --stream NAME")
			}
			if err := record.CheckStreamName(streamName); err != nil {
				return usageErrorf("--stream: %v", err)
			}
			if out == "" {
				return usageErrorf("give the record file with -o FILE")
			}
			if partitions < 1 || lines < 1 {
				return usageErrorf("--partitions and --lines must be at least 1")
			}
			t0 := time.Now()
			if start != "" {
				var err error
				if t0, err = time.Parse(time.RFC3339Nano, start); err != nil {
					return usageErrorf("--time %q: want an RFC 3339 time such as 2018-02-01T00:00:00Z", start)
				}
			}
			kw, _, err := loadKey(cmd, key)
			if err != nil {
				return err
			}
			in, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer in.Close()
			w, err := record.NewWriter(streamName, kw, nil)
			if err != nil {
				return err
			}
			f, err := atomicfile.Create(out, atomicfile.Options{Perm: 0o644, Overwrite: force})
			if err != nil {
				return err
			}
			defer f.Abort()
			fw := record.NewFileWriter(f)
			n, err := record.WriteLines(fw, w, in, record.LineOptions{Partitions: partitions, PerRecord: lines, Start: t0, Step: step})
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if end {
				for p := 0; p < partitions; p++ {
					b, err := w.SealEnd(uint32(p))
					if err != nil {
						return err
					}
					if err := fw.Write(b); err != nil {
						return err
					}
				}
			}
			if err := fw.Flush(); err != nil {
				return err
			}
			if err := f.Commit(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "sealed %d records of stream %s over %d partition(s) into %s\n", n, streamName, partitions, out)
			return nil
		},
	}
	c.Flags().StringVar(&key, "key", "", "key file (or kms:// key reference) that wraps the data key")
	c.Flags().StringVarP(&out, "output", "o", "", "record file to write")
	c.Flags().StringVar(&streamName, "stream", "", "stream the records belong to (bound into each record)")
	c.Flags().IntVar(&partitions, "partitions", 1, "partitions to deal the records over")
	c.Flags().IntVar(&lines, "lines", 100, "lines per record")
	c.Flags().StringVar(&start, "time", "", "event time of the first record (RFC 3339; default now)")
	c.Flags().DurationVar(&step, "time-step", 0, "event time between records")
	c.Flags().BoolVar(&end, "end", false, "close each partition with an end record")
	c.Flags().BoolVar(&force, "force", false, "replace an existing output")
	return c
}

func newStreamDecryptCmd() *cobra.Command {
	var key, out, streamName string
	var force bool
	c := &cobra.Command{
		Use:   "decrypt --key FILE --stream NAME [-o OUT [--force]] FILE.records",
		Short: "Open the records of a record file and write their bodies",
		Long: `Opens every record of a record file as read from the given stream (each record's
own partition), checks each writer's sequence numbers, and writes the bodies in
order. A record that does not open stops the command with an error naming it.`,
		Example: `  ppml stream decrypt --key stream.key --stream text text.records | head`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if streamName == "" {
				return usageErrorf("give the stream with --stream NAME")
			}
			_, kr, err := loadKey(cmd, key)
			if err != nil {
				return err
			}
			in, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer in.Close()
			var dst io.Writer = cmd.OutOrStdout()
			var af *atomicfile.File
			if out != "" && out != "-" {
				if af, err = atomicfile.Create(out, atomicfile.Options{Perm: 0o600, Overwrite: force}); err != nil {
					return err
				}
				defer af.Abort()
				dst = af
			}
			o := record.NewOpener(kr)
			fr := record.NewFileReader(in)
			type wp struct {
				w record.WriterID
				p uint32
			}
			seqs := map[wp]uint64{}
			bw := bufio.NewWriter(dst)
			for i := 1; ; i++ {
				b, err := fr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				h, err := record.Parse(b)
				if err != nil {
					return fmt.Errorf("%s: record %d: %w", args[0], i, err)
				}
				r, err := o.Open(streamName, h.Partition, b)
				if err != nil {
					return fmt.Errorf("%s: record %d: %w", args[0], i, err)
				}
				k := wp{r.Writer, r.Partition}
				if r.Seq != seqs[k]+1 {
					return fmt.Errorf("%s: record %d: writer %s partition %d: sequence %d after %d (records missing, repeated or reordered)", args[0], i, r.Writer, r.Partition, r.Seq, seqs[k])
				}
				seqs[k] = r.Seq
				bw.Write(r.Body)
			}
			if err := bw.Flush(); err != nil {
				return err
			}
			if af != nil {
				return af.Commit()
			}
			return nil
		},
	}
	c.Flags().StringVar(&key, "key", "", "key file (or kms:// key reference)")
	c.Flags().StringVarP(&out, "output", "o", "", "file to write ('-' or none: stdout)")
	c.Flags().BoolVar(&force, "force", false, "replace an existing output (atomically)")
	c.Flags().StringVar(&streamName, "stream", "", "stream the records were read from")
	return c
}
