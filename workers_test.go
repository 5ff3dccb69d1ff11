package lava

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// workerCounts are the Config.Workers values every result must agree
// across: one goroutine, two, a count that does not divide the KV heads,
// and more goroutines than KV heads.
var workerCounts = []int{1, 2, 3, 8}

// splitAlways makes multi-token Attend split its KV heads however small the
// cache, for the duration of a test.
func splitAlways(t *testing.T) {
	saved := minSplitWork
	minSplitWork = 0
	t.Cleanup(func() { minSplitWork = saved })
}

// transcript records, bit for bit, what a cache gives back: Reports, Attend
// outputs and the cache's state (its saved form, and every head's
// positions, keys and values as View shows them).
type transcript struct{ bytes.Buffer }

// compress runs c.Compress and records its Report.
func (tr *transcript) compress(t *testing.T, c *KVCache) {
	t.Helper()
	r, err := c.Compress()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(tr, "report %+v\n", r)
	for _, lr := range r.Layers {
		binary.Write(tr, binary.LittleEndian, math.Float64bits(lr.Entropy))
	}
}

func (tr *transcript) floats(x []float32) {
	for _, v := range x {
		binary.Write(tr, binary.LittleEndian, math.Float32bits(v))
	}
}

func (tr *transcript) state(t *testing.T, c *KVCache) {
	t.Helper()
	if c.cfg.Policy.scorer == nil { // a Custom policy cannot be saved
		data, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		tr.Write(data)
	}
	for l := range c.cfg.Layers {
		for kv := range c.cfg.KVHeads {
			v, err := c.View(l, kv)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(tr, "layer %d head %d positions %v\n", l, kv, v.Positions)
			tr.floats(v.AppendKeys(nil))
			tr.floats(v.AppendValues(nil))
		}
	}
}

// serialScorer is a Custom Scorer that fails the test if it is ever called
// from two goroutines at once (Custom.Score is documented not to be).
type serialScorer struct {
	t    *testing.T
	busy *atomic.Bool
}

func (s serialScorer) Score(in ScoreInput, out []float32) {
	if !s.busy.CompareAndSwap(false, true) {
		s.t.Error("Scorer.Score called concurrently")
	}
	defer s.busy.Store(false)
	for i := range out {
		out[i] = float32(in.Positions[i]%7) + in.Attention[i]
	}
}

// Compress (one-shot, the per-layer cascade, chunked streaming with
// decoding) and multi-token Attend give byte-identical caches, Reports and
// outputs for every Workers value, under every policy and element type.
func TestWorkersBitIdentical(t *testing.T) {
	splitAlways(t)
	policies := append(slices.Clone(allPolicies),
		LAVa().WithPooling(PoolAvg, 5), LAVa().WithFloor(FloorReference, 0.2),
		Custom("serial", serialScorer{t, new(atomic.Bool)}, EntropyLayers, JointHeads))
	for _, pol := range policies {
		for _, el := range allElements {
			for _, flow := range []string{"one-shot", "cascade", "chunked"} {
				t.Run(fmt.Sprintf("%s/%v/%s", pol.Name(), el, flow), func(t *testing.T) {
					var want []byte
					for _, workers := range workerCounts {
						got := workersFlow(t, pol, el, flow, workers)
						if want == nil {
							want = got
						} else if !bytes.Equal(got, want) {
							t.Fatalf("Workers = %d: results differ from Workers = 1 (%d bytes vs %d)", workers, len(got), len(want))
						}
					}
				})
			}
		}
	}
}

// workersFlow runs one flow on a fresh cache with the given Workers and
// returns its transcript.
func workersFlow(t *testing.T, pol Policy, el Element, flow string, workers int) []byte {
	cfg := Config{Layers: 3, Heads: 8, KVHeads: 4, HeadDim: 16, Window: 4, Budget: 20,
		Policy: pol, KeyElement: el, ValueElement: el, Workers: workers, DecodeSlack: 6, DecodeReserve: 4}
	const n, chunk, steps = 150, 37, 12
	p := randomPrompt(rand.New(rand.NewPCG(5, uint64(el))), cfg, n+steps)
	p.storedAs(cfg)
	c := newCache(t, cfg)
	var tr transcript
	switch flow {
	case "one-shot":
		for l := range cfg.Layers {
			p.appendRange(t, c, l, 0, n, true)
		}
		tr.compress(t, c)
	case "cascade":
		for l := range cfg.Layers {
			p.appendRange(t, c, l, 0, n, true)
			tr.compress(t, c)
			tr.state(t, c)
		}
	case "chunked":
		// Chunks whose queries come through Attend, a Compress after each,
		// then decode steps (one-token Attend, slack compressions).
		qrow := cfg.Heads * cfg.HeadDim
		out := make([]float32, chunk*qrow)
		for lo := 0; lo < n+steps; {
			hi := min(n, lo+chunk)
			if lo >= n {
				hi = lo + 1
			}
			for l := range cfg.Layers {
				p.appendRange(t, c, l, lo, hi, false)
				o := out[:(hi-lo)*qrow]
				if err := c.Attend(l, p.q[l][lo*qrow:hi*qrow], o); err != nil {
					t.Fatal(err)
				}
				tr.floats(o)
			}
			if hi <= n {
				tr.compress(t, c)
			}
			lo = hi
		}
	}
	tr.state(t, c)
	return tr.Bytes()
}

// A Compress that fails gives the same error, naming the same layer, for
// every Workers value, and leaves the cache unchanged: here layer 1's
// scores overflow and layer 2 lacks its window's queries, and the layer
// checked first in order (1) is the one reported.
func TestWorkersSameError(t *testing.T) {
	var want string
	for _, workers := range workerCounts {
		cfg := Config{Layers: 3, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 4, Budget: 10, Workers: workers}
		const n = 40
		p := randomPrompt(rand.New(rand.NewPCG(3, 3)), cfg, n)
		for i := range p.q[1] {
			p.q[1][i] = 3e19
		}
		for i := range p.k[1] {
			p.k[1][i] = 3e19
		}
		c := newCache(t, cfg)
		for l := range cfg.Layers {
			p.appendRange(t, c, l, 0, n, l != 2)
		}
		before, _ := c.MarshalBinary()
		_, err := c.Compress()
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "layer 1 ") {
			t.Fatalf("Workers = %d: Compress = %v, want an ErrInvalid naming layer 1", workers, err)
		}
		if want == "" {
			want = err.Error()
		} else if err.Error() != want {
			t.Errorf("Workers = %d: %v, want the error of Workers = 1: %v", workers, err, want)
		}
		if after, _ := c.MarshalBinary(); !bytes.Equal(after, before) {
			t.Errorf("Workers = %d: a failed Compress changed the cache", workers)
		}
	}
}

// Config.Workers out of range is rejected by New with an error naming the
// field, and no cache is made; 0 (the default) stays 0 in Config, read as
// GOMAXPROCS at each call.
func TestWorkersValidated(t *testing.T) {
	base := Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Budget: 40}
	for _, w := range []int{-1, math.MinInt, maxWorkers + 1, math.MaxInt} {
		cfg := base
		cfg.Workers = w
		c, err := New(cfg)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "Config.Workers") {
			t.Errorf("Workers = %d: New = %v, want an ErrInvalid naming Config.Workers", w, err)
		}
		if c != nil {
			t.Errorf("Workers = %d: New returned a cache with its error", w)
		}
	}
	for _, w := range []int{0, 1, maxWorkers} {
		cfg := base
		cfg.Workers = w
		c := newCache(t, cfg)
		if got := c.Config().Workers; got != w {
			t.Errorf("Workers = %d: Config().Workers = %d", w, got)
		}
	}
}

// The goroutines an Attend starts to share its KV heads stay for the next
// calls, and end once the cache is unreachable; a change of GOMAXPROCS
// (Workers 0) replaces them.
func TestAttendPoolLifetime(t *testing.T) {
	splitAlways(t)
	attend := func(c *KVCache) {
		q := make([]float32, c.cfg.Heads*c.cfg.HeadDim)
		if err := c.Attend(0, q, make([]float32, len(q))); err != nil {
			t.Fatal(err)
		}
	}
	// stopped waits for the pool's goroutines to end, collecting garbage
	// so that the cleanup of an unreachable cache runs.
	stopped := func(what string, p *attendPool) {
		done := make(chan struct{})
		go func() { p.alive.Wait(); close(done) }()
		for deadline := time.Now().Add(10 * time.Second); ; {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the pool's goroutines still run", what)
			}
			runtime.GC()
		}
	}
	cfg := Config{Layers: 1, Heads: 8, KVHeads: 4, HeadDim: 16, Window: 4, Budget: 20, Workers: 3}
	p := randomPrompt(rand.New(rand.NewPCG(6, 6)), cfg, 30)
	newFilled := func(cfg Config) *KVCache {
		c := newCache(t, cfg)
		p.appendRange(t, c, 0, 0, 30, false)
		return c
	}
	c := newFilled(cfg)
	attend(c)
	first := c.pool
	attend(c)
	if c.pool != first || len(first.start) != 2 {
		t.Fatalf("Workers 3 over 4 KV heads: pool of %d goroutines (replaced: %v), want the same 2", len(c.pool.start), c.pool != first)
	}
	c = nil
	stopped("Workers 3, cache unreachable", first)

	cfg.Workers = 0
	c = newFilled(cfg)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	attend(c)
	four := c.pool
	runtime.GOMAXPROCS(2)
	attend(c)
	if c.pool == four || len(c.pool.start) != 1 {
		t.Fatalf("Workers 0 after GOMAXPROCS 4 → 2: pool of %d goroutines (replaced: %v), want a new one of 1", len(c.pool.start), c.pool != four)
	}
	stopped("GOMAXPROCS 4 → 2, replaced pool", four)
	two := c.pool
	c = nil
	stopped("Workers 0, cache unreachable", two)
}
