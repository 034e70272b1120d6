package redisstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ppml/ppml/stream"
	"github.com/ppml/ppml/stream/redisstream"
	"github.com/ppml/ppml/stream/streamtest"
)

type broker struct {
	r   *streamtest.Redis
	rdb *redis.Client
}

func (b *broker) Addr() string                                     { return b.r.Addr }
func (b *broker) Create(t testing.TB, name string, partitions int) {}
func (b *broker) Append(t testing.TB, name string, p int, values ...[]byte) {
	if err := redisstream.Append(context.Background(), b.rdb, name, p, values...); err != nil {
		t.Fatal(err)
	}
}
func (b *broker) Read(t testing.TB, name string, p int) [][]byte {
	out, err := redisstream.Read(context.Background(), b.rdb, name, p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const leaseTTL = 1500 * time.Millisecond

var backend = streamtest.Backend{
	Name: "redis",
	Start: func(t *testing.T) streamtest.Broker {
		r := streamtest.StartRedis(t)
		rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
		t.Cleanup(func() { rdb.Close() })
		return &broker{r: r, rdb: rdb}
	},
	Connect: func(addr string) (stream.Log, func(), error) {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		return redisstream.New(rdb, redisstream.Options{LeaseTTL: leaseTTL}), func() { rdb.Close() }, nil
	},
	Dead: leaseTTL,
}

func TestMain(m *testing.M) { streamtest.Main(m, backend) }

func TestKill(t *testing.T)     { streamtest.RunKill(t, backend) }
func TestScaleOut(t *testing.T) { streamtest.RunScaleOut(t, backend) }
