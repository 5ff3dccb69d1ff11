package lava

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// Reset empties the cache, keeps its storage, and a refill behaves as a
// new cache.
func TestReset(t *testing.T) {
	for _, el := range allElements {
		for _, pol := range []Policy{LAVa(), H2O(), TOVA()} {
			cfg := Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 4, Budget: 16, KeyElement: el, ValueElement: el, Policy: pol, DecodeSlack: 4}
			const n = 100
			p := randomPrompt(rand.New(rand.NewPCG(41, 1)), cfg, n)
			c := newCache(t, cfg)
			p.fill(t, c, 30, false, false)
			decodeSteps(t, c, rand.New(rand.NewPCG(1, 2)), 10)
			allocated := c.AllocatedBytes()
			c.Reset()
			// Printed, so that an emptied slice equals a nil one.
			if fmt.Sprint(snapshot(c)) != fmt.Sprint(snapshot(newCache(t, cfg))) {
				t.Fatalf("%s %v: a Reset cache differs from a new one", pol.Name(), el)
			}
			if got := c.AllocatedBytes(); got != allocated {
				t.Errorf("%s %v: AllocatedBytes %d after Reset, %d before: storage not kept", pol.Name(), el, got, allocated)
			}
			fresh := newCache(t, cfg)
			p.fill(t, c, 30, false, false)
			p.fill(t, fresh, 30, false, false)
			if !reflect.DeepEqual(snapshot(c), snapshot(fresh)) {
				t.Errorf("%s %v: refilled after Reset differs from a new cache", pol.Name(), el)
			}
		}
	}
}

// AppendKeys and AppendValues widen every storage type into the caller's
// buffer, without allocating when it has room.
func TestAppendKeysValues(t *testing.T) {
	for _, el := range elementsFor(5) {
		cfg := Config{Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 5, Window: 2, Budget: 8, KeyElement: el, ValueElement: el}
		p := randomPrompt(rand.New(rand.NewPCG(43, 1)), cfg, 20)
		c := newCache(t, cfg)
		p.appendLayer(t, c, 0, 20, false)
		v, _ := c.View(0, 0)
		buf := make([]float32, 3, 3+v.Len()*cfg.HeadDim)
		keys, values := v.AppendKeys(buf), v.AppendValues(nil)
		for i := range v.Len() * cfg.HeadDim {
			k, val := viewAt(v, i)
			if math.Float32bits(keys[3+i]) != math.Float32bits(k) || math.Float32bits(values[i]) != math.Float32bits(val) {
				t.Fatalf("%v element %d: widened %v, %v; stored %v, %v", el, i, keys[3+i], values[i], k, val)
			}
		}
		if allocs := allocsIn(10, func() { _ = v.AppendKeys(buf[:0]) }); allocs != 0 {
			t.Errorf("%v: AppendKeys into a buffer with room allocated %d times in 10 calls", el, allocs)
		}
	}
}

// AllocatedBytes accounts for what the cache costs the Go heap, and
// Bytes for what it holds.
func TestAllocatedBytesMatchesHeap(t *testing.T) {
	for _, el := range allElements {
		cfg := Config{Layers: 4, Heads: 8, KVHeads: 4, HeadDim: 64, Window: 8, Budget: 64, KeyElement: el, ValueElement: el, DecodeReserve: 32}
		const n = 2000
		p := randomPrompt(rand.New(rand.NewPCG(47, 1)), cfg, n)
		for _, compress := range []bool{false, true} {
			base := liveHeap()
			c := newCache(t, cfg)
			for l := range cfg.Layers {
				p.appendLayer(t, c, l, 500, true)
			}
			if compress {
				if _, err := c.Compress(); err != nil {
					t.Fatal(err)
				}
			}
			live := liveHeap() - base
			alloc, held := c.AllocatedBytes(), c.Bytes()
			if held > alloc {
				t.Errorf("%v: Bytes %d exceeds AllocatedBytes %d", el, held, alloc)
			}
			checkHeapGrowth(t, fmt.Sprintf("%v compressed=%v", el, compress), live, alloc)
			runtime.KeepAlive(c)
		}
	}
}

// liveHeap is the heap in use after a collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// checkHeapGrowth fails unless the heap grew by about AllocatedBytes:
// size classes round allocations up by at most 1/8; headers and the test's
// own small allocations add a few KiB.
func checkHeapGrowth(t *testing.T, what string, live, alloc int64) {
	t.Helper()
	if d := float64(live-alloc) / float64(alloc); d < -0.02 || d > 0.15 {
		t.Errorf("%s: heap grew by %d, AllocatedBytes %d (%+.1f %%)", what, live, alloc, 100*d)
	}
}

// AllocatedBytes counts the scratch of an Attend split across goroutines
// (each goroutine's scores and the groups' rows) as it counts the cache's
// own, and the same calls leave the same count however the goroutines took
// the KV heads: a prompt attended through the cache on 3 workers, after a
// LAVa Compress that left its heads of different lengths.
func TestAllocatedBytesSplitAttend(t *testing.T) {
	cfg := Config{Layers: 2, Heads: 8, KVHeads: 4, HeadDim: 64, Window: 8, Budget: 400, Workers: 3}
	const n = 1500
	p := randomPrompt(rand.New(rand.NewPCG(48, 1)), cfg, n)
	var first int64
	for run := range 4 {
		base := liveHeap()
		c := newCache(t, cfg)
		for l := range cfg.Layers {
			p.appendLayer(t, c, l, n, false)
		}
		if _, err := c.Compress(); err != nil {
			t.Fatal(err)
		}
		qrow := cfg.Heads * cfg.HeadDim
		const tokens = 300 // ≤ the entries each head keeps
		for l := range cfg.Layers {
			q := p.q[l][(n-tokens)*qrow : n*qrow]
			if err := c.Attend(l, q, make([]float32, len(q))); err != nil {
				t.Fatal(err)
			}
		}
		live, alloc := liveHeap()-base, c.AllocatedBytes()
		checkHeapGrowth(t, fmt.Sprintf("run %d", run), live, alloc)
		if run == 0 {
			first = alloc
		} else if alloc != first {
			t.Errorf("run %d: AllocatedBytes %d, %d in run 0 after the same calls", run, alloc, first)
		}
		// End the pool's goroutines now, not when a cleanup gets to
		// them, so that their scratch is gone from the next run's base.
		if c.pool == nil {
			t.Fatal("the Attends did not split")
		}
		c.poolCleanup.Stop()
		c.pool.stop()
		c.pool.alive.Wait()
	}
}

// Append rejects NaN, ±Inf and (for float16 storage) values beyond its
// range, naming the layer, token and head, and leaves the cache unchanged,
// for every element type, in keys and in values, in any head.
func TestAppendRejectsNonFinite(t *testing.T) {
	for _, el := range elementsFor(3) {
		cfg := Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 3, Window: 2, Budget: 6, KeyElement: el, ValueElement: el}
		kr := cfg.KVHeads * cfg.HeadDim
		bad := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}
		if el == Float16 {
			bad = append(bad, 65520, -1e6) // round beyond float16's largest finite 65504
		}
		for _, x := range bad {
			for _, inValue := range []bool{false, true} {
				for tok := range 3 {
					for kv := range cfg.KVHeads {
						c := newCache(t, cfg)
						p := randomPrompt(rand.New(rand.NewPCG(3, 3)), cfg, 5)
						p.appendLayer(t, c, 1, 5, false)
						before := fmt.Sprint(snapshot(c))
						k, v := make([]float32, 3*kr), make([]float32, 3*kr)
						target := k
						if inValue {
							target = v
						}
						target[tok*kr+kv*cfg.HeadDim+2] = x
						err := c.Append(1, nil, k, v)
						what := map[bool]string{false: "key", true: "value"}[inValue]
						want := fmt.Sprintf("layer 1, token %d (position %d), KV head %d: %s element 2", tok, 5+tok, kv, what)
						if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
							t.Fatalf("%v, %v at %s of token %d head %d: Append = %v, want an ErrInvalid containing %q", el, x, what, tok, kv, err, want)
						}
						if fmt.Sprint(snapshot(c)) != before {
							t.Fatalf("%v, %v: the failed Append changed the cache", el, x)
						}
					}
				}
			}
		}
	}
}

// A rollback of draft tokens, then the same continuation, gives the cache
// of never having appended them (for the policies that neither evict while
// decoding nor accumulate, as Truncate documents).
func TestTruncateThenContinue(t *testing.T) {
	for _, pol := range []Policy{LAVa(), SnapKV(), AdaSnapKV(), VATP(), PyramidKV(DefaultPyramidBeta), Random(3)} {
		for _, el := range allElements {
			cfg := Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 4, Budget: 16, KeyElement: el, ValueElement: el, Policy: pol}
			const n, drafts, steps = 80, 3, 6
			p := randomPrompt(rand.New(rand.NewPCG(53, 1)), cfg, n+drafts+steps)
			junk := randomPrompt(rand.New(rand.NewPCG(59, 1)), cfg, n+drafts)
			qrow := cfg.Heads * cfg.HeadDim
			build := func(withDrafts bool) *KVCache {
				c := newCache(t, cfg)
				p.prefill(t, c, n)
				if withDrafts { // appended and attended, then rejected
					out := make([]float32, drafts*qrow)
					for l := range cfg.Layers {
						junk.appendRange(t, c, l, n, n+drafts, false)
						if err := c.Attend(l, junk.q[l][n*qrow:(n+drafts)*qrow], out); err != nil {
							t.Fatal(err)
						}
					}
					if err := c.Truncate(n); err != nil {
						t.Fatal(err)
					}
				}
				out := make([]float32, qrow)
				for i := n; i < n+steps; i++ {
					for l := range cfg.Layers {
						p.appendRange(t, c, l, i, i+1, false)
						if err := c.Attend(l, p.q[l][i*qrow:(i+1)*qrow], out); err != nil {
							t.Fatal(err)
						}
					}
				}
				if _, err := c.Compress(); err != nil {
					t.Fatal(err)
				}
				return c
			}
			if a, b := fmt.Sprint(snapshot(build(true))), fmt.Sprint(snapshot(build(false))); a != b {
				t.Errorf("%s %v: rollback then continue differs from never appending the drafts", pol.Name(), el)
			}
		}
	}
}

// After an Append fails part-way through a step, CommonTokens names the
// disagreeing layer, and Truncate to the smaller count undoes the step.
func TestFailedStepDetectedAndUndone(t *testing.T) {
	cfg := Config{Layers: 3, Heads: 2, KVHeads: 1, HeadDim: 4, Window: 2, Budget: 8}
	p := randomPrompt(rand.New(rand.NewPCG(61, 1)), cfg, 12)
	c := newCache(t, cfg)
	for l := range cfg.Layers {
		p.appendRange(t, c, l, 0, 10, true)
	}
	before := fmt.Sprint(snapshot(c))
	kv := make([]float32, cfg.KVHeads*cfg.HeadDim)
	for l := range 2 {
		if err := c.Append(l, nil, kv, kv); err != nil {
			t.Fatal(err)
		}
	}
	kv[0] = float32(math.NaN())
	if err := c.Append(2, nil, kv, kv); err == nil {
		t.Fatal("Append of a NaN succeeded")
	}
	if _, err := c.CommonTokens(); err == nil || !strings.Contains(err.Error(), "layer 2 holds 10 tokens, layer 0 holds 11") {
		t.Errorf("CommonTokens = %v, want an error naming layer 2", err)
	}
	if err := c.Truncate(10); err != nil {
		t.Fatal(err)
	}
	if n, err := c.CommonTokens(); n != 10 || err != nil {
		t.Errorf("after Truncate: CommonTokens = %d, %v", n, err)
	}
	if fmt.Sprint(snapshot(c)) != before {
		t.Errorf("Truncate did not restore the cache")
	}
	if err := c.Truncate(-1); err == nil {
		t.Errorf("Truncate(-1) succeeded")
	}
}

// A zero KVCache (before UnmarshalBinary) refuses work with errors and
// never panics.
func TestZeroKVCache(t *testing.T) {
	var c KVCache
	if n, err := c.CommonTokens(); n != 0 || err != nil {
		t.Errorf("CommonTokens = %d, %v", n, err)
	}
	if err := c.Append(0, nil, []float32{1}, []float32{1}); err == nil {
		t.Error("Append on a zero KVCache succeeded")
	}
	if err := c.Attend(0, []float32{1}, []float32{0}); err == nil {
		t.Error("Attend on a zero KVCache succeeded")
	}
	if _, err := c.View(0, 0); err == nil {
		t.Error("View on a zero KVCache succeeded")
	}
	if _, err := c.Compress(); err != nil {
		t.Errorf("Compress on a zero KVCache: %v", err)
	}
	if err := c.Truncate(0); err != nil {
		t.Errorf("Truncate on a zero KVCache: %v", err)
	}
	c.Reset()
	_ = c.Bytes() + c.AllocatedBytes()
	_ = c.Clone()
}
