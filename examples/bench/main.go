// Bench measures what Compress costs at scale: time and memory on a
// Llama-3-8B-like cache shape (32 layers, 32 query and 8 KV heads, head
// dimension 128) as the prompt grows, for LAVa and SnapKV, with synthetic
// random keys, values and queries (compression cost does not depend on
// what the numbers mean).
//
// Prefill runs as the cascade: each layer's prompt is appended in chunks
// and Compress runs right after, so the full cache of all layers is never
// held, only one layer's plus the kept entries of the others. Compress time
// is the sum over the layers' Compress calls (data generation and Append
// excluded). Peak heap is the largest live-plus-unswept heap seen by a
// sampler during the whole prefill and compression, input buffers
// included. Peak live heap is read after a forced GC between Append and
// Compress and after Compress.
//
// Two more experiments (-experiments) measure the cache over a sequence's
// life on the same shape, with the first policy of -policies:
//
//   - chunked: a prefill of -prefill tokens in chunks of -prefill-chunk,
//     appended to every layer and compressed after each chunk, as an engine
//     streams a long prompt; the heap in use is read after every chunk's
//     Appends (the high-water mark: about Budget + chunk entries per head)
//     and after its Compress, against the full cache that is never held.
//
//   - slack: the decode cost of Config.DecodeSlack. Two copies of one
//     compressed cache, with slack -slack and without, decode the same
//     random tokens (Append and Attend in every layer) for one slack cycle,
//     the copy with slack compressing back to Budget once; the copies take
//     turns step by step, -reps times, and the extra time of the slack
//     copy's step that compressed is the cost of its Compress, given per
//     decoded token as a fraction of a decode step without slack.
//
//     cd examples && go run ./bench
//     go run ./bench -sizes 1024,4096 -policies lava,snapkv,pyramidkv
//     go run ./bench -sizes 65536 -layers 8   # a quick look at 64K; scale by 32/8 yourself
//     go run ./bench -experiments chunked,slack   # 64K chunked prefill, then the slack's decode cost
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lavakv/lava"
)

type options struct {
	sizes, policies                 []string
	layers, heads, kvHeads, headDim int
	budget, window, chunk           int
	seed                            uint64
	args                            []string

	experiments              []string
	prefill, prefillChunk    int
	slack, slackPrompt, reps int
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{args: args}
	var sizes, policies string
	fs.StringVar(&sizes, "sizes", "1024,4096,16384,65536", "comma-separated prompt lengths n")
	fs.StringVar(&policies, "policies", "lava,snapkv", "comma-separated policies, as lava.PolicyByName names them")
	fs.IntVar(&o.layers, "layers", 32, "layers")
	fs.IntVar(&o.heads, "heads", 32, "query heads per layer")
	fs.IntVar(&o.kvHeads, "kvheads", 8, "key/value heads per layer")
	fs.IntVar(&o.headDim, "dim", 128, "head dimension")
	fs.IntVar(&o.budget, "budget", 512, "budget B: average entries kept per KV head per layer, window included")
	fs.IntVar(&o.window, "window", 32, "observation window w")
	fs.IntVar(&o.chunk, "chunk", 4096, "prompt tokens per Append")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the synthetic data")
	var experiments string
	fs.StringVar(&experiments, "experiments", "cascade", "comma-separated experiments: cascade (Compress time and heap by -sizes), chunked (a chunked prefill), slack (decode cost of the slack)")
	fs.IntVar(&o.prefill, "prefill", 65536, "chunked: prompt tokens")
	fs.IntVar(&o.prefillChunk, "prefill-chunk", 512, "chunked: tokens per chunk, Compress after each")
	fs.IntVar(&o.slack, "slack", 0, "slack: decode slack S; 0 is budget/4")
	fs.IntVar(&o.slackPrompt, "slack-prompt", 1024, "slack: prompt tokens prefilled and compressed to the budget before decoding")
	fs.IntVar(&o.reps, "reps", 7, "slack: repetitions of the slack cycle, with and without slack in turn")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	o.sizes, o.policies = strings.Split(sizes, ","), strings.Split(policies, ",")
	o.experiments = strings.Split(experiments, ",")
	if err := o.check(); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	if err := bench(o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

// maxTokens bounds every token count a flag sets: 2M tokens of the default
// shape are 512 GiB of full cache, past any machine this runs on.
const maxTokens = 1 << 21

// check validates every numeric flag against sane bounds before any work,
// naming the flag, and then the shape as the library would.
func (o *options) check() error {
	for _, f := range []struct {
		name      string
		v, lo, hi int
	}{
		{"-layers", o.layers, 1, 1024},
		{"-heads", o.heads, 1, 4096},
		{"-kvheads", o.kvHeads, 1, o.heads},
		{"-dim", o.headDim, 1, 4096},
		{"-budget", o.budget, 2, maxTokens},
		{"-window", o.window, 1, o.budget - 1},
		{"-chunk", o.chunk, 1, maxTokens},
		{"-prefill", o.prefill, 1, maxTokens},
		{"-prefill-chunk", o.prefillChunk, 1, o.prefill},
		{"-slack", o.slack, 0, maxTokens},
		{"-slack-prompt", o.slackPrompt, o.budget + 1, maxTokens},
		{"-reps", o.reps, 1, 1000},
	} {
		if f.v < f.lo || f.v > f.hi {
			return fmt.Errorf("%s = %d, want %d ≤ %s ≤ %d", f.name, f.v, f.lo, f.name[1:], f.hi)
		}
	}
	if o.heads%o.kvHeads != 0 {
		return fmt.Errorf("-heads = %d is not a multiple of -kvheads = %d", o.heads, o.kvHeads)
	}
	for _, s := range o.sizes {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err != nil || n <= o.budget || n > maxTokens {
			return fmt.Errorf("-sizes: %q, want integers above -budget = %d and at most %d", s, o.budget, maxTokens)
		}
	}
	_, err := lava.New(lava.Config{Layers: o.layers, Heads: o.heads, KVHeads: o.kvHeads, HeadDim: o.headDim, Budget: o.budget, Window: o.window})
	if err != nil {
		return fmt.Errorf("-layers, -heads, -kvheads, -dim, -budget, -window: %v", err)
	}
	return nil
}

// result is one policy at one prompt length.
type result struct {
	n                  int
	policy             string
	compress, total    time.Duration
	peakHeap, peakLive uint64
	layerBytes, kept   int64
	fullBytes          int64
	maxLayerCompress   time.Duration
	keptPerHeadAverage float64
}

func bench(o options, stdout, stderr io.Writer) error {
	var ns []int
	for _, s := range o.sizes {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= o.budget {
			return fmt.Errorf("-sizes: %q, want integers above -budget = %d", s, o.budget)
		}
		ns = append(ns, n)
	}
	var ps []lava.Policy
	for _, name := range o.policies {
		p, err := lava.PolicyByName(strings.TrimSpace(name))
		if err != nil {
			return fmt.Errorf("-policies: %v", err)
		}
		ps = append(ps, p)
	}
	if o.chunk < 1 {
		return fmt.Errorf("-chunk = %d, want ≥ 1", o.chunk)
	}
	for _, e := range o.experiments {
		if !slices.Contains([]string{"cascade", "chunked", "slack"}, e) {
			return fmt.Errorf("-experiments: %q, want cascade, chunked or slack", e)
		}
	}
	if slices.Contains(o.experiments, "cascade") {
		if err := cascade(o, ns, ps, stdout, stderr); err != nil {
			return err
		}
	}
	if slices.Contains(o.experiments, "chunked") {
		if err := chunked(o, ps[0], stdout, stderr); err != nil {
			return err
		}
	}
	if slices.Contains(o.experiments, "slack") {
		if err := slackCost(o, ps[0], stdout, stderr); err != nil {
			return err
		}
	}
	return nil
}

// cascade measures the cascade's Compress at every size and policy and
// writes its table.
func cascade(o options, ns []int, ps []lava.Policy, stdout, stderr io.Writer) error {
	var rs []result
	for _, n := range ns {
		for _, p := range ps {
			fmt.Fprintf(stderr, "bench: n = %d, %s …", n, p.Name())
			r, err := measure(o, n, p)
			if err != nil {
				return fmt.Errorf("n = %d, %s: %v", n, p.Name(), err)
			}
			fmt.Fprintf(stderr, " compress %v, peak heap %.0f MiB\n", r.compress.Round(time.Millisecond), mib(int64(r.peakHeap)))
			rs = append(rs, r)
		}
	}
	report(stdout, o, rs)
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// heapSampler records the largest heap object bytes (live and not yet
// swept) seen every 500 µs, and at every explicit sample.
type heapSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	wg   sync.WaitGroup
}

func startSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{})}
	h.sample()
	h.wg.Go(func() {
		t := time.NewTicker(500 * time.Microsecond)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				h.sample()
			}
		}
	})
	return h
}

func (h *heapSampler) sample() {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	v := s[0].Value.Uint64()
	for {
		old := h.peak.Load()
		if v <= old || h.peak.CompareAndSwap(old, v) {
			return
		}
	}
}

func (h *heapSampler) finish() uint64 {
	h.sample()
	close(h.stop)
	h.wg.Wait()
	return h.peak.Load()
}

// liveHeap collects garbage and returns the bytes of live heap objects.
// Called between Appends and Compresses, it sees the cascade's high-water
// marks: a layer's full prompt plus the kept entries of the layers before.
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// rng is xorshift64*, fast enough that making the data does not dominate
// the run; its values are uniform in [−1, 1).
type rng uint64

func (r *rng) fill(x []float32) {
	s := uint64(*r)
	for i := range x {
		s ^= s >> 12
		s ^= s << 25
		s ^= s >> 27
		x[i] = float32(int32((s*2685821657736338717)>>32)) / (1 << 31)
	}
	*r = rng(s)
}

// measure prefills n tokens into every layer with the cascade and returns
// the cost.
func measure(o options, n int, p lava.Policy) (result, error) {
	cfg := lava.Config{Layers: o.layers, Heads: o.heads, KVHeads: o.kvHeads, HeadDim: o.headDim,
		Budget: o.budget, Window: o.window, Policy: p}
	runtime.GC()
	h := startSampler()
	start := time.Now()
	cache, err := lava.New(cfg)
	if err != nil {
		return result{}, err
	}
	r := rng(o.seed*0x9e3779b97f4a7c15 + 1)
	kvRow, qRow := o.kvHeads*o.headDim, o.heads*o.headDim
	chunk := min(o.chunk, n)
	k, v := make([]float32, chunk*kvRow), make([]float32, chunk*kvRow)
	q := make([]float32, o.window*qRow)
	res := result{n: n, policy: p.Name()}
	for l := range o.layers {
		// The prefix in chunks without queries, then the window with them:
		// scoring needs only the window's queries.
		for at := 0; at < n-o.window; at += chunk {
			t := min(chunk, n-o.window-at)
			r.fill(k[:t*kvRow])
			r.fill(v[:t*kvRow])
			if err := cache.Append(l, nil, k[:t*kvRow], v[:t*kvRow]); err != nil {
				return result{}, err
			}
		}
		w := o.window
		r.fill(k[:w*kvRow])
		r.fill(v[:w*kvRow])
		r.fill(q)
		if err := cache.Append(l, q, k[:w*kvRow], v[:w*kvRow]); err != nil {
			return result{}, err
		}
		res.peakLive = max(res.peakLive, liveHeap())
		h.sample()
		t0 := time.Now()
		if _, err := cache.Compress(); err != nil {
			return result{}, err
		}
		d := time.Since(t0)
		res.compress += d
		res.maxLayerCompress = max(res.maxLayerCompress, d)
		h.sample()
		res.peakLive = max(res.peakLive, liveHeap())
	}
	res.total = time.Since(start)
	res.peakHeap = h.finish()
	entry := int64(2 * o.headDim * 4)
	res.layerBytes = int64(n) * int64(o.kvHeads) * entry
	res.fullBytes = res.layerBytes * int64(o.layers)
	res.kept = cache.Bytes()
	res.keptPerHeadAverage = float64(res.kept) / float64(entry) / float64(o.layers*o.kvHeads)
	runtime.KeepAlive(cache)
	return res, nil
}

func report(w io.Writer, o options, rs []result) {
	fmt.Fprintf(w, "# Compress at scale\n\n```sh\ncd examples && go run ./bench%s\n```\n\n", strings.Join(append([]string{""}, o.args...), " "))
	fmt.Fprintf(w, "Shape: %d layers, %d query heads, %d KV heads, head dimension %d, float32; budget B = %d, window w = %d; "+
		"synthetic uniform data; cascade (Compress after each layer's Append, chunks of %d tokens).\n\n",
		o.layers, o.heads, o.kvHeads, o.headDim, o.budget, o.window, o.chunk)
	fmt.Fprintf(w, "| n | policy | Compress, total | slowest layer | × SnapKV | prefill + compress wall | peak heap, sampled | peak live heap | one full layer | full cache (never held) | kept | kept entries / head |\n")
	fmt.Fprintf(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	snap := map[int]time.Duration{}
	for _, r := range rs {
		if r.policy == "SnapKV" {
			snap[r.n] = r.compress
		}
	}
	for _, r := range rs {
		ratio := "—"
		if s, ok := snap[r.n]; ok && s > 0 {
			ratio = fmt.Sprintf("%.2f", float64(r.compress)/float64(s))
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %.0f MiB | %.0f MiB | %.0f MiB | %.0f MiB | %.1f MiB | %.1f |\n",
			r.n, r.policy, dur(r.compress), dur(r.maxLayerCompress), ratio, dur(r.total),
			mib(int64(r.peakHeap)), mib(int64(r.peakLive)), mib(r.layerBytes), mib(r.fullBytes), mib(r.kept), r.keptPerHeadAverage)
	}
	fmt.Fprintf(w, "\nCompress, total: the sum of the %d cascade Compress calls (LAVa re-trims earlier layers at each). "+
		"× SnapKV: Compress time over SnapKV's at the same n. Wall: prefill (data generation and Append) plus Compress, plus a forced GC "+
		"before and after each Compress for the live-heap column. Peak heap, sampled: largest heap-object bytes (live and not yet collected, "+
		"with the forced GCs) read every 0.5 ms and around every Compress. Peak live heap: heap-object bytes right after those forced GCs, "+
		"i.e. the cascade's high-water mark of live data, input buffers (one %d-token chunk) included. Kept: KVCache.Bytes() at the end.\n\n",
		o.layers, o.chunk)
	if len(rs) > 1 {
		fmt.Fprintf(w, "Compress time growth between consecutive sizes:")
		prev := map[string]result{}
		for _, r := range rs {
			if p, ok := prev[r.policy]; ok {
				fmt.Fprintf(w, " %s %d→%d ×%.1f;", r.policy, p.n, r.n, float64(r.compress)/float64(p.compress))
			}
			prev[r.policy] = r
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\nGo %s, %s/%s, GOMAXPROCS %d.\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))
}

func dur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
}
