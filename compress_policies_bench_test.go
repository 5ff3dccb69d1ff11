package lava

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// BenchmarkCompressPolicies times LAVa's and SnapKV's Compress on the same
// Llama-3-8B-shaped 4096-token prompt (32 layers, 32 query heads, 8 KV
// heads, head dim 128, float32) to B = 512, both in every iteration, so that
// their ratio comes from one run of one binary on a noisy machine:
//
//	go test -run '^$' -bench CompressPolicies -count 6 .
//
// mode=cascade compresses after each layer's prompt is appended, as a
// streaming host does during prefill; mode=oneshot appends every layer, then
// compresses once. The metrics, per prompt, are Compress alone (Append is
// not timed): lava-ms, snapkv-ms and lava/snapkv; with the assembly kernels
// also bound-ms, the FLOPs of the window attention scoring (every layer's
// Window queries of every query head against all of its keys: 2·L·H·w·n·d)
// at the FMA peak of one core measured in the same run (fmaPeak) times
// min(Workers, GOMAXPROCS) cores, and each policy's time over it
// (lava/bound, snapkv/bound).
func BenchmarkCompressPolicies(b *testing.B) {
	for _, mode := range []string{"cascade", "oneshot"} {
		for _, workers := range []int{1, 2} {
			cfg := Config{Layers: 32, Heads: 32, KVHeads: 8, HeadDim: 128, Budget: 512, Workers: workers}
			name := fmt.Sprintf("n=%d/B=%d/mode=%s/workers=%d", benchPrompt, cfg.Budget, mode, workers)
			b.Run(name, func(b *testing.B) { benchPolicies(b, cfg, mode == "cascade") })
		}
	}
}

// benchPolicies is BenchmarkCompressPolicies for one configuration.
func benchPolicies(b *testing.B, cfg Config, cascade bool) {
	const n = benchPrompt
	p := newBenchPrompt(cfg, n)
	policies := []Policy{LAVa(), SnapKV()}
	var spent [2]time.Duration
	i := 0
	for b.Loop() {
		for j := range policies {
			j = (j + i) % len(policies) // alternate which runs first
			cfg := cfg
			cfg.Policy = policies[j]
			spent[j] += p.run(b, cfg, cascade)
		}
		i++
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N) / 1e6 }
	lava, snap := per(spent[0]), per(spent[1])
	b.ReportMetric(lava, "lava-ms")
	b.ReportMetric(snap, "snapkv-ms")
	b.ReportMetric(lava/snap, "lava/snapkv")
	if peak := fmaPeakFLOPS(); peak > 0 {
		w := cfg.Window
		if w == 0 {
			w = DefaultWindow
		}
		flops := 2 * float64(cfg.Layers*cfg.Heads*w*n*cfg.HeadDim)
		cores := float64(min(cfg.Workers, runtime.GOMAXPROCS(0)))
		bound := flops / (peak * cores) * 1e3
		b.ReportMetric(bound, "bound-ms")
		b.ReportMetric(lava/bound, "lava/bound")
		b.ReportMetric(snap/bound, "snapkv/bound")
	}
	b.ReportMetric(0, "ns/op") // two policies and their Appends: not a figure of either
}

// benchPromptData is the data of a benchmark prompt: the same random keys and
// values for every layer, and the window queries.
type benchPromptData struct {
	kv, q []float32
	split int // where the window's rows start in kv
	cfg   Config
}

func newBenchPrompt(cfg Config, n int) *benchPromptData {
	rng := rand.New(rand.NewPCG(1, 1))
	w := 32
	kv := make([]float32, n*cfg.KVHeads*cfg.HeadDim)
	for i := range kv {
		kv[i] = float32(rng.NormFloat64())
	}
	q := make([]float32, w*cfg.Heads*cfg.HeadDim)
	for i := range q {
		q[i] = float32(rng.NormFloat64() * 2)
	}
	return &benchPromptData{kv: kv, q: q, split: (n - w) * cfg.KVHeads * cfg.HeadDim, cfg: cfg}
}

// run prefills a new cache of cfg with the prompt, compressing after each
// layer (cascade) or once at the end, and returns the time spent in Compress.
func (p *benchPromptData) run(b *testing.B, cfg Config, cascade bool) time.Duration {
	c, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	var spent time.Duration
	compress := func() {
		start := time.Now()
		if _, err := c.Compress(); err != nil {
			b.Fatal(err)
		}
		spent += time.Since(start)
	}
	for l := range cfg.Layers {
		if err := c.Append(l, nil, p.kv[:p.split], p.kv[:p.split]); err != nil {
			b.Fatal(err)
		}
		if err := c.Append(l, p.q, p.kv[p.split:], p.kv[p.split:]); err != nil {
			b.Fatal(err)
		}
		if cascade {
			compress()
		}
	}
	if !cascade {
		compress()
	}
	return spent
}
