package exec

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// # Outputs
//
// Each output is a named pipe (FIFO) that the runtime makes in its private
// directory before it starts the child, and reads into the output's
// in-memory file while the program runs. A FIFO is the one channel a
// program can open by name that crosses from one Gramine enclave to
// another: Gramine gives the child the FIFO's two ends at fork and
// encrypts what flows between them; a file the child writes stays in its
// own enclave. The same mechanism is used everywhere, so a program sees the
// same outputs on every platform: a path it opens for writing once and
// writes from start to end (no seeking, no reading back). In Gramine a
// second open of the same output fails (its FIFO ends are point-to-point);
// on Linux it appends — do not rely on it.

// collector reads one output's FIFO into its in-memory file.
type collector struct {
	name string
	fifo *os.File
	done chan error
}

// makeFIFO makes the named pipe for output name in dir.
func makeFIFO(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	if err := unix.Mkfifo(p, 0o600); err != nil {
		return "", fmt.Errorf("exec: output %s: make named pipe: %w", name, err)
	}
	return p, nil
}

// startCollector opens the read end of the FIFO at path (without waiting
// for a writer) and copies what arrives into dst until stop is called.
func startCollector(name, path string, dst io.Writer) (*collector, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("exec: output %s: open named pipe: %w", name, err)
	}
	c := &collector{name: name, fifo: f, done: make(chan error, 1)}
	go func() { c.done <- drain(f, dst) }()
	return c, nil
}

// stop ends the collection once the program and everything in its process
// group are gone: what they wrote is in the pipe; it is read, then the
// collection ends. It returns the first error of the collection.
func (c *collector) stop() error {
	if err := c.fifo.SetReadDeadline(time.Now()); err != nil {
		c.fifo.Close()
		<-c.done
		return fmt.Errorf("exec: output %s: %w", c.name, err)
	}
	err := <-c.done
	c.fifo.Close()
	if err != nil {
		return fmt.Errorf("exec: output %s: %w", c.name, err)
	}
	return nil
}

// drain copies the FIFO into dst until the read deadline (set by stop),
// then reads what is left without waiting. Reading 0 bytes does not end
// it: on Linux that only means no writer has the FIFO open at the moment
// (the program has not opened it yet, or closed it); the netpoller then
// wakes it at the next writer's first bytes. In Gramine the read end
// never sees end-of-file (the runtime holds the unused write end Gramine
// made for the FIFO), which is why the end comes from the program's exit.
func drain(f *os.File, dst io.Writer) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, 256<<10)
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			for {
				n, rerr = unix.Read(int(fd), buf)
				if rerr != unix.EINTR {
					break
				}
			}
			// false: wait for the next event (data, a writer, the deadline).
			return !(rerr == unix.EAGAIN || rerr == nil && n == 0)
		})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return drainLeft(rc, buf, dst)
		}
		if err != nil {
			return err
		}
		if rerr != nil {
			return rerr
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return err
		}
	}
}

// drainLeft reads what the pipe holds without waiting.
func drainLeft(rc syscall.RawConn, buf []byte, dst io.Writer) error {
	var err error
	cerr := rc.Control(func(fd uintptr) {
		for {
			n, rerr := unix.Read(int(fd), buf)
			switch {
			case rerr == unix.EINTR:
				continue
			case rerr == unix.EAGAIN || rerr == nil && n == 0:
				return
			case rerr != nil:
				err = rerr
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
				return
			}
		}
	})
	if cerr != nil {
		return cerr
	}
	return err
}
