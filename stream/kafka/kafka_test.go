package kafka_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ppml/ppml/stream"
	"github.com/ppml/ppml/stream/kafka"
	"github.com/ppml/ppml/stream/streamtest"
)

type broker struct {
	c  *kfake.Cluster
	cl *kgo.Client
}

func (b *broker) Addr() string { return strings.Join(b.c.ListenAddrs(), ",") }
func (b *broker) Create(t testing.TB, name string, partitions int) {
	if err := kafka.CreateTopic(context.Background(), b.cl, name, partitions, -1, nil); err != nil {
		t.Fatal(err)
	}
}
func (b *broker) Append(t testing.TB, name string, p int, values ...[]byte) {
	if err := kafka.Append(context.Background(), b.cl, name, p, values...); err != nil {
		t.Fatal(err)
	}
}
func (b *broker) Read(t testing.TB, name string, p int) [][]byte {
	out, err := kafka.Read(context.Background(), b.c.ListenAddrs(), name, p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const sessionTimeout = 6 * time.Second

var backend = streamtest.Backend{
	Name: "kafka",
	Start: func(t *testing.T) streamtest.Broker {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return &broker{c: c, cl: cl}
	},
	Connect: func(addr string) (stream.Log, func(), error) {
		return kafka.New(kafka.Options{Brokers: strings.Split(addr, ","), SessionTimeout: sessionTimeout,
			TransactionTimeout: 10 * time.Second}), func() {}, nil
	},
	Dead: sessionTimeout,
}

func TestMain(m *testing.M) { streamtest.Main(m, backend) }

func TestKill(t *testing.T)     { streamtest.RunKill(t, backend) }
func TestScaleOut(t *testing.T) { streamtest.RunScaleOut(t, backend) }
