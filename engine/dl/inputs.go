package dlengine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"strings"

	"github.com/ppml/ppml/dl/idx"
	"github.com/ppml/ppml/dl/text"
	"github.com/ppml/ppml/dl/torch"
	"github.com/ppml/ppml/dl/train"
	"github.com/ppml/ppml/ml/table"
)

// Format is a table's file format.
type Format string

const (
	CSV     Format = "csv"
	Parquet Format = "parquet"
)

// ParseFormat reads csv or parquet, or their media types.
func ParseFormat(s string) (Format, error) {
	t := s
	if mt, _, err := mime.ParseMediaType(s); err == nil {
		t = mt
	}
	switch strings.ToLower(t) {
	case "csv", "text/csv":
		return CSV, nil
	case "parquet", "application/vnd.apache.parquet", "application/x-parquet":
		return Parquet, nil
	}
	return "", fmt.Errorf("table format %q: want csv or parquet", s)
}

// Input is one input of a job: a file by path (the launcher passes /proc/self/fd/N of a memfd
// holding the decrypted plaintext) or an io.ReaderAt of Size bytes. Format applies to tables.
type Input struct {
	Path     string
	ReaderAt io.ReaderAt
	Size     int64
	Format   Format
}

// open returns the input as a ReaderAt with its size.
func (in Input) open() (io.ReaderAt, int64, func(), error) {
	if in.Path != "" {
		f, err := os.Open(in.Path)
		if err != nil {
			return nil, 0, nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, nil, err
		}
		return f, fi.Size(), func() { f.Close() }, nil
	}
	if in.ReaderAt == nil {
		return nil, 0, nil, errors.New("input has neither a path nor a reader")
	}
	return in.ReaderAt, in.Size, func() {}, nil
}

// budget counts the engine's own buffers against the memory limit (torch.Reserve) and gives
// them back when the job ends.
type budget struct{ held int64 }

func (b *budget) reserve(what string, n int64) error {
	if err := torch.Reserve(what, n); err != nil {
		return err
	}
	b.held += n
	return nil
}

func (b *budget) release() {
	torch.Release(b.held)
	b.held = 0
}

// idxArray opens an IDX input: read in place when it is plain, inflated into memory (counted)
// when it is gzip-compressed, as the datasets are published.
func idxArray(in Input, b *budget, what string) (*idx.Array, func(), error) {
	ra, size, done, err := in.open()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	head := make([]byte, min(size, 2))
	ra.ReadAt(head, 0)
	if !idx.IsGzip(head) {
		a, err := idx.Open(ra, size)
		if err != nil {
			done()
			return nil, nil, fmt.Errorf("%s: %w", what, err)
		}
		return a, done, nil
	}
	defer done()
	limit := int64(4) << 30
	if l := torch.MemoryLimit(); l > 0 {
		limit = max(l-torch.MemoryInUse(), 0)
	}
	raw, err := idx.Gunzip(io.NewSectionReader(ra, 0, size), limit)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := b.reserve(what+" (inflated)", int64(len(raw))); err != nil {
		return nil, nil, err
	}
	a, err := idx.Open(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	return a, func() {}, nil
}

// images opens an IDX image file and, when labelsIn is set, its labels.
func images(imgIn Input, labelsIn *Input, imgName, labName string, b *budget) (*train.Images, func(), error) {
	a, done, err := idxArray(imgIn, b, "input "+imgName)
	if err != nil {
		return nil, nil, err
	}
	var labels []int64
	if labelsIn != nil {
		la, ldone, err := idxArray(*labelsIn, b, "input "+labName)
		if err != nil {
			done()
			return nil, nil, err
		}
		labels, err = train.ReadLabels(la)
		ldone()
		if err != nil {
			done()
			return nil, nil, fmt.Errorf("input %s: %w", labName, err)
		}
		if err := b.reserve("labels", int64(len(labels))*8); err != nil {
			done()
			return nil, nil, err
		}
	}
	m, err := train.NewImages(a, labels)
	if err != nil {
		done()
		if labelsIn != nil && len(a.Dims) == 3 && len(labels) != a.Items() {
			return nil, nil, fmt.Errorf("inputs %s and %s differ in count: %d images, %d labels", imgName, labName, a.Items(), len(labels))
		}
		return nil, nil, fmt.Errorf("input %s: %w", imgName, err)
	}
	return m, done, nil
}

// numericTable reads the feature columns (and the label, when named) of a table input.
func numericTable(in Input, name string, features []string, label string, b *budget) (*table.Dataset, error) {
	ra, size, done, err := in.open()
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", name, err)
	}
	defer done()
	// A decoded table takes about as much memory as its file, twice for CSV's text.
	if err := b.reserve("table "+name, size*2); err != nil {
		return nil, err
	}
	sr := io.NewSectionReader(ra, 0, size)
	var d *table.Dataset
	sel := table.Selection{Features: features, Label: label}
	switch in.Format {
	case CSV:
		d, err = table.ReadCSV(sr, sel)
	case Parquet:
		d, err = table.ReadParquet(sr, sel)
	default:
		err = fmt.Errorf("table format %q: want csv or parquet", in.Format)
	}
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", name, err)
	}
	if err := d.X.CheckComplete(); err != nil {
		return nil, fmt.Errorf("input %s: %w (the mlp does not accept missing values: impute them first)", name, err)
	}
	return d, nil
}

// textTable reads the text column (and the label, when named) of a table input.
func textTable(in Input, name, textCol, label string, b *budget) (*text.Table, error) {
	ra, size, done, err := in.open()
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", name, err)
	}
	defer done()
	if err := b.reserve("table "+name, size*2); err != nil {
		return nil, err
	}
	sr := io.NewSectionReader(ra, 0, size)
	var t *text.Table
	switch in.Format {
	case CSV:
		t, err = text.ReadCSV(sr, textCol, label)
	case Parquet:
		t, err = text.ReadParquet(sr, textCol, label)
	default:
		err = fmt.Errorf("table format %q: want csv or parquet", in.Format)
	}
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", name, err)
	}
	return t, nil
}

// encodeTexts turns texts into token ids with the vocabulary.
func encodeTexts(v *text.Vocabulary, texts []string, labels []int64, maxTokens int, b *budget) (*train.Texts, error) {
	t := &train.Texts{Starts: make([]int, 0, len(texts)+1), Y: labels}
	for _, s := range texts {
		t.Starts = append(t.Starts, len(t.Tokens))
		t.Tokens = v.Encode(t.Tokens, s, maxTokens)
	}
	t.Starts = append(t.Starts, len(t.Tokens))
	if err := b.reserve("token ids", int64(len(t.Tokens))*8+int64(len(t.Starts))*8); err != nil {
		return nil, err
	}
	return t, nil
}

// rowsOf turns a numeric table into float32 rows.
func rowsOf(d *table.Dataset, b *budget) (*train.Rows, error) {
	n, f := d.X.NumRows(), len(d.X.Names)
	if err := b.reserve("feature rows", int64(n)*int64(f)*4); err != nil {
		return nil, err
	}
	r := &train.Rows{X: d.X.RowMajor32(), Features: f}
	if d.Y != nil {
		r.Y = make([]int64, n)
		for i, v := range d.Y {
			if v != float64(int64(v)) || v < 0 || v >= float64(text.MaxLabel) {
				return nil, fmt.Errorf("label column %q, row %d: want a class index 0, 1, … below %d", d.Label, i+1, text.MaxLabel)
			}
			r.Y[i] = int64(v)
		}
	}
	return r, nil
}

// checkLabels checks that every label is a class of the model.
func checkLabels(labels []int64, classes int, what string) error {
	for i, y := range labels {
		if y < 0 || y >= int64(classes) {
			return fmt.Errorf("%s, row %d: the label is not one of the model's %d classes (0 to %d)", what, i+1, classes, classes-1)
		}
	}
	return nil
}
