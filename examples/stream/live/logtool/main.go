// Command logtool is the producer and the consumer of the live-log example
// (examples/stream/live/README.md): it publishes the sealed records of a
// record file to a Redis Streams log, each to the partition its header
// names (the Redis stream STREAM:P, as the stream engine reads it), and
// fetches a stream's records back into a record file once every partition
// has ended. It holds no key and opens nothing: 'ppml stream encrypt' seals
// the records and 'ppml stream decrypt' opens the results.
//
//	go run ./examples/stream/live/logtool publish 127.0.0.1:6390 text.records
//	go run ./examples/stream/live/logtool fetch 127.0.0.1:6390 wordcount 1 results.records
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ppml/ppml/atomicfile"
	"github.com/ppml/ppml/stream/record"
	"github.com/ppml/ppml/stream/redisstream"
)

const usage = `usage:
  logtool publish REDIS_ADDR FILE.records
  logtool fetch REDIS_ADDR STREAM PARTITIONS OUT.records   (waits up to 2 minutes for every partition's end record)`

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "logtool:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 1 {
		return errors.New(usage)
	}
	ctx := context.Background()
	switch {
	case args[0] == "publish" && len(args) == 3:
		rdb := redis.NewClient(&redis.Options{Addr: args[1]})
		defer rdb.Close()
		return publish(ctx, rdb, args[2])
	case args[0] == "fetch" && len(args) == 5:
		n, err := strconv.Atoi(args[3])
		if err != nil || n < 1 {
			return fmt.Errorf("PARTITIONS %q: want a number of at least 1", args[3])
		}
		rdb := redis.NewClient(&redis.Options{Addr: args[1]})
		defer rdb.Close()
		return fetch(ctx, rdb, args[2], n, args[4])
	}
	return errors.New(usage)
}

func publish(ctx context.Context, rdb *redis.Client, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	fr := record.NewFileReader(f)
	counts := map[string]int{}
	for i := 1; ; i++ {
		b, err := fr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		h, err := record.Parse(b)
		if err != nil {
			return fmt.Errorf("%s: record %d: %w", file, i, err)
		}
		if err := redisstream.Append(ctx, rdb, h.Stream, int(h.Partition), b); err != nil {
			return fmt.Errorf("publish to %s: %w", rdb.Options().Addr, err)
		}
		counts[redisstream.Key(h.Stream, int(h.Partition))]++
	}
	for k, n := range counts {
		fmt.Printf("published %d records to %s\n", n, k)
	}
	return nil
}

func fetch(ctx context.Context, rdb *redis.Client, stream string, partitions int, out string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var all [][]byte
		ended := 0
		for p := 0; p < partitions; p++ {
			recs, err := redisstream.Read(ctx, rdb, stream, p)
			if err != nil {
				return fmt.Errorf("read %s from %s: %w", redisstream.Key(stream, p), rdb.Options().Addr, err)
			}
			for _, b := range recs {
				if h, err := record.Parse(b); err == nil && h.Kind == record.KindEnd {
					ended++
					break
				}
			}
			all = append(all, recs...)
		}
		if ended == partitions {
			f, err := atomicfile.Create(out, atomicfile.Options{Perm: 0o644, Overwrite: true})
			if err != nil {
				return err
			}
			defer f.Abort()
			fw := record.NewFileWriter(f)
			for _, b := range all {
				if err := fw.Write(b); err != nil {
					return err
				}
			}
			if err := fw.Flush(); err != nil {
				return err
			}
			if err := f.Commit(); err != nil {
				return err
			}
			fmt.Printf("fetched %d records of %s (%d partitions, all ended) into %s\n", len(all), stream, partitions, out)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d of %d partitions ended after 2 minutes: is the job running?", stream, ended, partitions)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
