package bench

import (
	"bufio"
	"bytes"
	"os"
	"runtime/metrics"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// sampler records the peak resident set of some processes and the peak
// live heap of this one while a scenario runs. Linux only (/proc); elsewhere
// RSS reads as zero.
type sampler struct {
	pids     func() []int // processes whose RSS is summed; nil: this process
	stop     chan struct{}
	done     sync.WaitGroup
	peakRSS  uint64
	peakHeap uint64
}

func startSampler(pids func() []int) *sampler {
	s := &sampler{pids: pids, stop: make(chan struct{})}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for {
			s.sampleOnce(sample)
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) sampleOnce(sample []metrics.Sample) {
	var rss uint64
	if s.pids == nil {
		rss = procStatus(os.Getpid(), "VmRSS:")
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			s.peakHeap = max(s.peakHeap, sample[0].Value.Uint64())
		}
	} else {
		for _, pid := range s.pids() {
			rss += procStatus(pid, "VmRSS:")
		}
	}
	s.peakRSS = max(s.peakRSS, rss)
}

func (s *sampler) finish() (rss, heap uint64) {
	close(s.stop)
	s.done.Wait()
	return s.peakRSS, s.peakHeap
}

// procStatus reads a kB field of /proc/<pid>/status, in bytes.
func procStatus(pid int, field string) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		if v, ok := bytes.CutPrefix(line, []byte(field)); ok {
			f := bytes.Fields(v)
			if len(f) == 0 {
				return 0
			}
			n, _ := strconv.ParseUint(string(f[0]), 10, 64)
			return n << 10
		}
	}
	return 0
}

// procCPU is the user+system CPU time a process has used so far.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseUint(string(f[11]), 10, 64)
	st, _ := strconv.ParseUint(string(f[12]), 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
