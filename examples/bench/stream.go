package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/lavakv/lava"
)

// This file holds the streaming experiments: a chunked prefill's memory
// (chunked) and the decode cost of the slack (slackCost).

func (o options) config(p lava.Policy) lava.Config {
	return lava.Config{Layers: o.layers, Heads: o.heads, KVHeads: o.kvHeads, HeadDim: o.headDim,
		Budget: o.budget, Window: o.window, Policy: p}
}

func (o options) command() string {
	return "cd examples && go run ./bench" + strings.Join(append([]string{""}, o.args...), " ")
}

// prompt holds the synthetic inputs of one chunk of one layer.
type prompt struct {
	k, v, q []float32
	r       rng
}

func newPrompt(o options, chunk int) *prompt {
	kvRow := o.kvHeads * o.headDim
	return &prompt{k: make([]float32, chunk*kvRow), v: make([]float32, chunk*kvRow),
		q: make([]float32, o.window*o.heads*o.headDim), r: rng(o.seed*0x9e3779b97f4a7c15 + 1)}
}

// appendChunk appends t random tokens to layer l of c, the queries of the
// last Window of them included (all that scoring needs).
func (p *prompt) appendChunk(c *lava.KVCache, o options, l, t int) error {
	kvRow := o.kvHeads * o.headDim
	p.r.fill(p.k[:t*kvRow])
	p.r.fill(p.v[:t*kvRow])
	pre := max(t-o.window, 0)
	if pre > 0 {
		if err := c.Append(l, nil, p.k[:pre*kvRow], p.v[:pre*kvRow]); err != nil {
			return err
		}
	}
	q := p.q[:(t-pre)*o.heads*o.headDim]
	p.r.fill(q)
	return c.Append(l, q, p.k[pre*kvRow:t*kvRow], p.v[pre*kvRow:t*kvRow])
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// chunkedResult is what one chunked prefill held, in bytes above the heap
// in use before it.
type chunkedResult struct {
	reserve                int
	inUse, live, liveAfter int64
	sampled, maxHeld, kept int64
	chunks                 int
	wall, compress         time.Duration
	before                 uint64
}

// measureChunked streams a prefill of o.prefill tokens through a cache
// with Config.DecodeReserve reserve in chunks of o.prefillChunk,
// compressing after each.
func measureChunked(o options, p lava.Policy, reserve int) (chunkedResult, error) {
	n, chunk := o.prefill, o.prefillChunk
	cfg := o.config(p)
	cfg.DecodeReserve = reserve
	runtime.GC()
	r := chunkedResult{reserve: reserve, before: heapInUse()}
	h := startSampler()
	cache, err := lava.New(cfg)
	if err != nil {
		return r, err
	}
	pr := newPrompt(o, chunk)
	var gcs time.Duration
	start := time.Now()
	for at := 0; at < n; at += chunk {
		t := min(chunk, n-at)
		for l := range o.layers {
			if err := pr.appendChunk(cache, o, l, t); err != nil {
				return r, err
			}
		}
		r.chunks++
		r.maxHeld = max(r.maxHeld, cache.Bytes())
		// The chunk's high-water mark, before and after collecting what
		// the previous Compress left behind.
		h.sample()
		r.inUse = max(r.inUse, int64(heapInUse()-r.before))
		t0 := time.Now()
		runtime.GC()
		r.live = max(r.live, int64(heapInUse()-r.before))
		gcs += time.Since(t0)
		t0 = time.Now()
		if _, err := cache.Compress(); err != nil {
			return r, err
		}
		r.compress += time.Since(t0)
		h.sample()
		t0 = time.Now()
		runtime.GC()
		r.liveAfter = max(r.liveAfter, int64(heapInUse()-r.before))
		gcs += time.Since(t0)
	}
	r.wall = time.Since(start) - gcs
	r.sampled = int64(h.finish()) - int64(r.before)
	r.kept = cache.Bytes()
	runtime.KeepAlive(cache)
	return r, nil
}

// chunked measures a chunked prefill without and with a decode reserve of
// one chunk, and writes what the heap held.
func chunked(o options, p lava.Policy, stdout, stderr io.Writer) error {
	n, chunk := o.prefill, o.prefillChunk
	if chunk < o.window || n < chunk {
		return fmt.Errorf("-prefill-chunk = %d with -prefill = %d, want -window = %d ≤ chunk ≤ prefill", chunk, n, o.window)
	}
	var rs []chunkedResult
	for _, reserve := range []int{0, chunk} {
		fmt.Fprintf(stderr, "bench: chunked prefill of %d tokens in chunks of %d, %s, DecodeReserve %d …", n, chunk, p.Name(), reserve)
		r, err := measureChunked(o, p, reserve)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, " peak live heap %.0f MiB\n", mib(r.live))
		rs = append(rs, r)
	}
	entry := int64(2 * o.headDim * 4)
	heads := int64(o.layers * o.kvHeads)
	full := int64(n) * heads * entry
	bound := int64(o.budget+chunk) * heads * entry
	cell := func(b int64) string { return fmt.Sprintf("%.1f MiB = %.0f", mib(b), float64(b)/float64(heads*entry)) }
	fmt.Fprintf(stdout, "## Chunked prefill of %d tokens\n\n```sh\n%s\n```\n\n", n, o.command())
	fmt.Fprintf(stdout, "Shape: %d layers, %d query heads, %d KV heads, head dimension %d, float32; %s, budget B = %d, window w = %d; "+
		"synthetic uniform data. The prompt is appended to every layer in %d chunks of %d tokens (queries for the last w of each), "+
		"and Compress runs after each chunk, so the cache holds at most about B + chunk = %d entries per KV head (%.0f MiB); the full "+
		"cache of %d tokens, never held, is %.0f MiB. Run twice: with lava's default `Config.DecodeReserve` 0, and with a reserve of one chunk, "+
		"so that the storage Compress moves the kept rows into has room for the next chunk.\n\n",
		o.layers, o.heads, o.kvHeads, o.headDim, p.Name(), o.budget, o.window, rs[0].chunks, chunk, o.budget+chunk, mib(bound), n, mib(full))
	fmt.Fprintf(stdout, "| quantity (MiB = entries per KV head) |")
	for _, r := range rs {
		fmt.Fprintf(stdout, " DecodeReserve %d |", r.reserve)
	}
	fmt.Fprintf(stdout, "\n|---|---:|---:|\n")
	for _, row := range []struct {
		name string
		v    func(r chunkedResult) int64
	}{
		{"most KVCache.Bytes, after a chunk's Appends", func(r chunkedResult) int64 { return r.maxHeld }},
		{"**peak live heap**: HeapInuse after a forced GC, after a chunk's Appends", func(r chunkedResult) int64 { return r.live }},
		{"peak heap in use: HeapInuse after a chunk's Appends, before that GC", func(r chunkedResult) int64 { return r.inUse }},
		{"peak live heap after a Compress", func(r chunkedResult) int64 { return r.liveAfter }},
		{"peak heap objects, sampled every 0.5 ms", func(r chunkedResult) int64 { return r.sampled }},
		{"kept at the end (KVCache.Bytes)", func(r chunkedResult) int64 { return r.kept }},
	} {
		fmt.Fprintf(stdout, "| %s |", row.name)
		for _, r := range rs {
			fmt.Fprintf(stdout, " %s |", cell(row.v(r)))
		}
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stdout, "| peak live heap, × (B + chunk) / %% of the full cache |")
	for _, r := range rs {
		fmt.Fprintf(stdout, " %.2f× / %.2f %% |", float64(r.live)/float64(bound), 100*float64(r.live)/float64(full))
	}
	fmt.Fprintf(stdout, "\n| prefill wall time (forced GCs excluded) / of which Compress |")
	for _, r := range rs {
		fmt.Fprintf(stdout, " %.1f s / %.1f s |", r.wall.Seconds(), r.compress.Seconds())
	}
	fmt.Fprintf(stdout, "\n\nHeap figures are above the heap in use before the cache was made (%.1f MiB) and include the input buffers "+
		"(one chunk's keys and values and the window's queries, %.1f MiB). Wall time includes the synthetic data's generation.\n\n",
		mib(int64(rs[0].before)), mib(int64(4*(2*chunk*o.kvHeads*o.headDim+o.window*o.heads*o.headDim))))
	return nil
}

// slackCost measures the decode time Config.DecodeSlack adds: the Compress
// it runs once per about S tokens, per decoded token, against a decode
// step's time without it.
func slackCost(o options, p lava.Policy, stdout, stderr io.Writer) error {
	S := o.slack
	if S == 0 {
		S = o.budget / 4
	}
	if S < 1 || o.slackPrompt <= o.budget || o.reps < 1 {
		return fmt.Errorf("-slack = %d, -slack-prompt = %d, -reps = %d: want slack ≥ 0, prompt > -budget = %d, reps ≥ 1", o.slack, o.slackPrompt, o.reps, o.budget)
	}
	fmt.Fprintf(stderr, "bench: decode slack %d, %s, %d repetitions …", S, p.Name(), o.reps)
	base, err := lava.New(o.config(p))
	if err != nil {
		return err
	}
	pr := newPrompt(o, o.slackPrompt)
	for l := range o.layers {
		if err := pr.appendChunk(base, o, l, o.slackPrompt); err != nil {
			return err
		}
	}
	cfg := o.config(p)
	without, err := base.CloneWith(cfg)
	if err != nil {
		return err
	}
	cfg.DecodeSlack = S
	with, err := base.CloneWith(cfg)
	if err != nil {
		return err
	}
	for _, c := range []*lava.KVCache{with, without} {
		if _, err := c.Compress(); err != nil {
			return err
		}
	}
	entry := int64(2 * o.headDim * 4)
	heads := int64(o.layers * o.kvHeads)
	start := float64(with.Bytes()) / float64(heads*entry)
	// Enough steps for the slack copy to compress once, not twice.
	steps := int(math.Ceil(float64(o.budget+S)-start)) + 2
	kvRow, qRow := o.kvHeads*o.headDim, o.heads*o.headDim
	tok := make([]float32, steps*o.layers*(2*kvRow+qRow))
	pr.r.fill(tok)
	out := make([]float32, qRow)
	// step decodes token i in c and returns how long it took.
	step := func(c *lava.KVCache, i int) (time.Duration, error) {
		t0 := time.Now()
		for l := range o.layers {
			at := (i*o.layers + l) * (2*kvRow + qRow)
			if err := c.Append(l, nil, tok[at:at+kvRow], tok[at+kvRow:at+2*kvRow]); err != nil {
				return 0, err
			}
			if err := c.Attend(l, tok[at+2*kvRow:at+2*kvRow+qRow], out); err != nil {
				return 0, err
			}
		}
		return time.Since(t0), nil
	}
	var fracs, cycleFracs, direct, directFracs, stepMs, compressMs []float64
	for rep := range o.reps {
		a, b := with.Clone(), without.Clone()
		runtime.GC()
		// The two copies take turns step by step (who goes first
		// alternating), so both see the same machine.
		ta, tb := make([]float64, steps), make([]float64, steps)
		k := -1 // the step in which the slack copy compressed
		for i := range steps {
			held := a.Bytes()
			for _, slack := range []bool{(rep+i)%2 == 0, (rep+i)%2 != 0} {
				c, d := b, tb
				if slack {
					c, d = a, ta
				}
				t, err := step(c, i)
				if err != nil {
					return err
				}
				d[i] = float64(t)
			}
			if a.Bytes() < held && k < 0 {
				k = i
			}
		}
		if k < 0 {
			return fmt.Errorf("the slack copy did not compress in %d steps", steps)
		}
		// The same Compress, called on the copy without slack.
		runtime.GC()
		t0 := time.Now()
		if _, err := b.Compress(); err != nil {
			return err
		}
		tc := float64(time.Since(t0))
		perStep := median(tb)
		c := ta[k] - tb[k]
		var sa, sb float64
		for i := range steps {
			sa, sb = sa+ta[i], sb+tb[i]
		}
		fracs = append(fracs, c/float64(S)/perStep)
		cycleFracs = append(cycleFracs, (sa-sb)/float64(S)/(sb/float64(steps)))
		direct = append(direct, tc/1e6)
		directFracs = append(directFracs, tc/float64(S)/perStep)
		stepMs = append(stepMs, perStep/1e6)
		compressMs = append(compressMs, c/1e6)
	}
	fmt.Fprintf(stderr, " %.1f %% per token\n", 100*median(fracs))

	fmt.Fprintf(stdout, "## Decode cost of the slack\n\n```sh\n%s\n```\n\n", o.command())
	fmt.Fprintf(stdout, "Shape as above; %s, B = %d, w = %d, slack S = %d. A %d-token prompt is compressed to B in two copies, one with "+
		"`Config.DecodeSlack` = S and one without; both decode the same %d random tokens (per layer one Append and one Attend), "+
		"taking turns step by step (which goes first alternates), so that both see the same load on a shared machine; the slack copy "+
		"compresses back to B once, inside the Attend of one step. %d repetitions, each from fresh clones of the two compressed caches. "+
		"Slack cost per token = (that step's time with slack − the same step without) / S, against the median decode step without slack; "+
		"whole cycle: (Σ with − Σ without) / S against the mean step, which also counts the cheaper steps after the Compress and all the noise; "+
		"direct: the Compress of the copy without slack after the cycle, timed alone, / S.\n\n",
		p.Name(), o.budget, o.window, S, o.slackPrompt, steps, o.reps)
	fmt.Fprintf(stdout, "| repetition | decode step, ms | Compress step − plain step, ms | per token, %% of a step | whole cycle, %% | direct Compress, ms | direct, %% of a step |\n|---:|---:|---:|---:|---:|---:|---:|\n")
	for i := range fracs {
		fmt.Fprintf(stdout, "| %d | %.2f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", i+1, stepMs[i], compressMs[i], 100*fracs[i], 100*cycleFracs[i], direct[i], 100*directFracs[i])
	}
	fmt.Fprintf(stdout, "| median | %.2f | %.1f | %.1f | %.1f | %.1f | %.1f |\n\n", median(stepMs), median(compressMs), 100*median(fracs), 100*median(cycleFracs), median(direct), 100*median(directFracs))
	fmt.Fprintf(stdout, "Go %s, %s/%s, GOMAXPROCS %d.\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))
	return nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
