package lava

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// prefixView is v restricted to its entries at positions ≤ last: what a
// token at position last may attend to.
func prefixView(v HeadView, last int, d int) HeadView {
	n := 0
	for n < v.Len() && int(v.Positions[n]) <= last {
		n++
	}
	w := v
	w.Positions = v.Positions[:n]
	w.Keys, w.Values = firstOf(v.Keys, n*d), firstOf(v.Values, n*d)
	w.Keys16, w.Values16 = firstOf(v.Keys16, n*d), firstOf(v.Values16, n*d)
	w.KeyBlocks, w.ValueBlocks = firstOf(v.KeyBlocks, n*v.KeyRowBytes), firstOf(v.ValueBlocks, n*v.ValueRowBytes)
	return w
}

// firstOf returns the first k elements of s, or nil for a nil s.
func firstOf[T any](s []T, k int) []T {
	if s == nil {
		return nil
	}
	return s[:k]
}

// Attend over t new tokens equals a float64 oracle of causal attention by
// position, each token over the held entries up to its own position, on
// compressed (gapped) heads, for t = 1..40, every element type and every
// kernel implementation.
func TestAttendMultiToken(t *testing.T) {
	forEachImpl(t, testAttendMultiToken)
}

func testAttendMultiToken(t *testing.T) {
	for _, el := range allElements {
		cfg := Config{Layers: 1, Heads: 6, KVHeads: 2, HeadDim: 12, Window: 4, Budget: 24, KeyElement: el, ValueElement: el, DecodeReserve: 8}
		rng := rand.New(rand.NewPCG(7, uint64(el)))
		const n = 120
		p := randomPrompt(rng, cfg, n)
		d := cfg.HeadDim
		for tt := 1; tt <= 40; tt += 3 {
			c := newCache(t, cfg)
			p.fill(t, c, n, false, false) // compressed: heads keep different, gapped positions
			q := make([]float32, tt*cfg.Heads*d)
			k := make([]float32, tt*cfg.KVHeads*d)
			v := make([]float32, len(k))
			for i := range q {
				q[i] = float32(rng.NormFloat64() * 2)
			}
			for i := range k {
				k[i], v[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			}
			if err := c.Append(0, nil, k, v); err != nil {
				t.Fatal(err)
			}
			out := make([]float32, len(q))
			for i := range out {
				out[i] = float32(math.NaN()) // every element must be written
			}
			if err := c.Attend(0, q, out); err != nil {
				t.Fatal(err)
			}
			for i := range tt {
				pos := n + i
				for h := range cfg.Heads {
					view, _ := c.View(0, h/(cfg.Heads/cfg.KVHeads))
					vis := prefixView(view, pos, d)
					qh := q[(i*cfg.Heads+h)*d : (i*cfg.Heads+h+1)*d]
					want := oracleAttend(vis, qh)
					var vmax float64
					for e := range vis.Len() * d {
						_, val := viewAt(vis, e)
						vmax = max(vmax, math.Abs(float64(val)))
					}
					tol := 8 * float64(vis.Len()+4*d) * 0x1p-24 * vmax
					for j, w := range want {
						if g := float64(out[(i*cfg.Heads+h)*d+j]); !(math.Abs(g-w) <= tol) {
							t.Fatalf("%v t=%d token %d head %d dim %d: %v, oracle %v (tolerance %g)", el, tt, i, h, j, g, w, tol)
						}
					}
				}
			}
		}
	}
}

// Config.AttentionScale multiplies every query·key product: a cache whose
// scale is twice the default attends and scores exactly as one of default
// scale given twice the queries (doubling is exact in float32).
func TestAttentionScale(t *testing.T) {
	cfg := Config{Layers: 1, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 4, Budget: 16}
	const n = 60
	p := randomPrompt(rand.New(rand.NewPCG(37, 1)), cfg, n)
	scaled := cfg
	scaled.AttentionScale = 2 / math.Sqrt(float64(cfg.HeadDim))
	a, b := newCache(t, scaled), newCache(t, cfg)
	p.appendLayer(t, a, 0, n, false)
	for i := range p.q[0] {
		p.q[0][i] *= 2
	}
	p.appendLayer(t, b, 0, n, false)
	if !slices.Equal(scoresOf(t, a, 0), scoresOf(t, b, 0)) {
		t.Errorf("scores differ between AttentionScale ×2 and queries ×2")
	}
	q := p.q[0][(n-1)*cfg.Heads*cfg.HeadDim:]
	outA, outB := make([]float32, len(q)), make([]float32, len(q))
	for i := range q {
		q[i] /= 2 // a's queries at their own scale; b's doubled
	}
	if err := a.Attend(0, q, outA); err != nil {
		t.Fatal(err)
	}
	for i := range q {
		q[i] *= 2
	}
	if err := b.Attend(0, q, outB); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(outA, outB) {
		t.Errorf("Attend differs between AttentionScale ×2 and queries ×2")
	}
	bad := cfg
	bad.AttentionScale = math.Inf(1)
	if _, err := New(bad); err == nil {
		t.Errorf("New accepted AttentionScale = +Inf")
	}
}
