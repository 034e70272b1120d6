// Package train runs the dl engine's training loop and batched prediction on a torch.Model,
// over datasets that make one batch at a time: images read item by item from an IDX file (so
// the decrypted input is streamed, not decoded whole), rows of a numeric table, or texts as
// token ids.
//
// Training is reproducible: the rows of epoch e are visited in the order
// split.Shuffle(n, seed, 2+e), batches are consecutive runs of that order (the last may be
// short), and with one thread libtorch's arithmetic is the same from run to run, so the same
// data, parameters and seed give the same model bytes.
package train

import (
	"errors"
	"fmt"

	"github.com/ppml/ppml/dl/idx"
	"github.com/ppml/ppml/dl/torch"
)

// Data is a dataset the loop batches. Labels is nil for unlabelled data (prediction).
type Data interface {
	Len() int
	Labels() []int64
	// Batch returns the model inputs for the given rows.
	Batch(rows []int) ([]torch.Input, error)
}

// Images is an IDX file of N × H × W unsigned-byte images with optional labels; pixels reach
// the model as float32 in [0, 1] (value / 255), shaped N × 1 × H × W.
type Images struct {
	arr    *idx.Array
	labels []int64
	h, w   int
	item   []byte
}

// NewImages checks the image file's shape and the labels' count.
func NewImages(a *idx.Array, labels []int64) (*Images, error) {
	if len(a.Dims) != 3 {
		return nil, fmt.Errorf("images: an IDX file of %d dimensions, want 3 (count × height × width)", len(a.Dims))
	}
	if a.Items() == 0 {
		return nil, errors.New("images: the IDX file holds no images")
	}
	if labels != nil && len(labels) != a.Items() {
		return nil, fmt.Errorf("images and labels differ in count: %d images, %d labels", a.Items(), len(labels))
	}
	return &Images{arr: a, labels: labels, h: a.Dims[1], w: a.Dims[2], item: make([]byte, a.ItemSize())}, nil
}

// ReadLabels reads a one-dimensional IDX file of class indices.
func ReadLabels(a *idx.Array) ([]int64, error) {
	if len(a.Dims) != 1 {
		return nil, fmt.Errorf("labels: an IDX file of %d dimensions, want 1 (one label per image)", len(a.Dims))
	}
	out := make([]int64, a.Items())
	one := make([]byte, 1)
	for i := range out {
		if err := a.Read(i, one); err != nil {
			return nil, fmt.Errorf("labels: %w", err)
		}
		out[i] = int64(one[0])
	}
	return out, nil
}

// Size is the image height and width.
func (m *Images) Size() (h, w int) { return m.h, m.w }

func (m *Images) Len() int        { return m.arr.Items() }
func (m *Images) Labels() []int64 { return m.labels }

func (m *Images) Batch(rows []int) ([]torch.Input, error) {
	px := m.h * m.w
	x := make([]float32, len(rows)*px)
	for i, r := range rows {
		if err := m.arr.Read(r, m.item); err != nil {
			return nil, fmt.Errorf("images: image %d: %w", r, err)
		}
		dst := x[i*px : (i+1)*px]
		for j, b := range m.item {
			dst[j] = float32(b) / 255
		}
	}
	return []torch.Input{{F32: x, Shape: []int64{int64(len(rows)), 1, int64(m.h), int64(m.w)}}}, nil
}

// Stats is the mean and standard deviation of each pixel over all images (for the MLP's
// standardization).
func (m *Images) Stats() (mean, std []float32, err error) {
	px := m.h * m.w
	sum, sq := make([]float64, px), make([]float64, px)
	for r := range m.Len() {
		if err := m.arr.Read(r, m.item); err != nil {
			return nil, nil, fmt.Errorf("images: image %d: %w", r, err)
		}
		for j, b := range m.item {
			v := float64(b) / 255
			sum[j] += v
			sq[j] += v * v
		}
	}
	return finish(sum, sq, m.Len())
}

// PixelStats is the mean and standard deviation of all pixels of all images (LeNet-5's input
// normalization, as BigDL's GreyImgNormalizer).
func (m *Images) PixelStats() (mean, std float32, err error) {
	var sum, sq float64
	for r := range m.Len() {
		if err := m.arr.Read(r, m.item); err != nil {
			return 0, 0, fmt.Errorf("images: image %d: %w", r, err)
		}
		for _, b := range m.item {
			v := float64(b) / 255
			sum += v
			sq += v * v
		}
	}
	mu, sd, err := finish([]float64{sum}, []float64{sq}, m.Len()*len(m.item))
	if err != nil {
		return 0, 0, err
	}
	return mu[0], sd[0], nil
}

// Rows is a numeric table: Features values per row, row-major.
type Rows struct {
	X        []float32
	Features int
	Y        []int64
}

func (r *Rows) Len() int        { return len(r.X) / r.Features }
func (r *Rows) Labels() []int64 { return r.Y }

func (r *Rows) Batch(rows []int) ([]torch.Input, error) {
	f := r.Features
	x := make([]float32, len(rows)*f)
	for i, row := range rows {
		copy(x[i*f:(i+1)*f], r.X[row*f:(row+1)*f])
	}
	return []torch.Input{{F32: x, Shape: []int64{int64(len(rows)), int64(f)}}}, nil
}

// Stats is the mean and standard deviation of each feature.
func (r *Rows) Stats() (mean, std []float32, err error) {
	f := r.Features
	sum, sq := make([]float64, f), make([]float64, f)
	for i, v := range r.X {
		sum[i%f] += float64(v)
		sq[i%f] += float64(v) * float64(v)
	}
	return finish(sum, sq, r.Len())
}

// finish turns sums into float32 mean and standard deviation; a constant feature gets
// standard deviation 1 so that standardizing leaves it at 0 instead of dividing by zero.
func finish(sum, sq []float64, n int) ([]float32, []float32, error) {
	if n == 0 {
		return nil, nil, errors.New("no rows")
	}
	mean, std := make([]float32, len(sum)), make([]float32, len(sum))
	for j := range sum {
		m := sum[j] / float64(n)
		v := sq[j]/float64(n) - m*m
		mean[j] = float32(m)
		std[j] = 1
		if v > 1e-12 {
			std[j] = float32(sqrt(v))
		}
	}
	return mean, std, nil
}

// Texts are token ids per text: text i is Tokens[Starts[i]:Starts[i+1]].
type Texts struct {
	Tokens []int64
	Starts []int // len = texts + 1
	Y      []int64
}

func (t *Texts) Len() int        { return len(t.Starts) - 1 }
func (t *Texts) Labels() []int64 { return t.Y }

func (t *Texts) Batch(rows []int) ([]torch.Input, error) {
	var tokens []int64
	offsets := make([]int64, len(rows))
	for i, r := range rows {
		offsets[i] = int64(len(tokens))
		tokens = append(tokens, t.Tokens[t.Starts[r]:t.Starts[r+1]]...)
	}
	if tokens == nil {
		tokens = []int64{} // a batch of texts without tokens: empty bags
	}
	return []torch.Input{{I64: tokens, Shape: []int64{int64(len(tokens))}}, {I64: offsets, Shape: []int64{int64(len(rows))}}}, nil
}
