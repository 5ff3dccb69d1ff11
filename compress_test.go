package lava

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// shapes covers GQA groups 1, 2, 4 and 8, windows from 1 to 32 and prompts
// from just above the budget to a few thousand tokens.
var shapes = []struct {
	layers, heads, kvHeads, dim, window, budget, n int
}{
	{2, 4, 4, 8, 1, 4, 5},
	{3, 4, 2, 8, 4, 8, 40},
	{2, 8, 2, 16, 8, 24, 300},
	{4, 8, 1, 8, 13, 20, 200},
	{2, 16, 2, 32, 32, 64, 700},
	{3, 4, 4, 16, 16, 48, 3000},
}

func shapeConfig(i int) (Config, int) {
	s := shapes[i]
	return Config{Layers: s.layers, Heads: s.heads, KVHeads: s.kvHeads, HeadDim: s.dim, Window: s.window, Budget: s.budget}, s.n
}

// variants are the option combinations every shape is tested with.
var variants = []struct {
	name string
	set  func(*Config)
}{
	{"paper", func(*Config) {}},
	{"avgpool", func(c *Config) { c.Policy = c.Policy.WithPooling(PoolAvg, 5) }},
	{"adakv", func(c *Config) { c.Policy = c.Policy.WithFloor(FloorAdaKV, DefaultAdaAlpha) }},
	{"reference", func(c *Config) { c.Policy = c.Policy.WithFloor(FloorReference, DefaultAdaAlpha) }},
	{"redistribute", func(c *Config) { c.Redistribute = true }},
	{"float16", func(c *Config) { c.KeyElement, c.ValueElement = Float16, Float16 }},
	{"q8_0", func(c *Config) { c.KeyElement, c.ValueElement = Q8_0, Q8_0 }},
	{"q4_0", func(c *Config) { c.KeyElement, c.ValueElement = Q4_0, Q4_0 }},
	{"q8_0/q4_0", func(c *Config) { c.KeyElement, c.ValueElement = Q8_0, Q4_0 }},
}

func newCache(t testing.TB, cfg Config) *KVCache {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkInvariants checks spec section 8's invariants 1, 2, 3, 7 and 8 on a
// cache filled from p and compressed once (no decode tokens yet).
func checkInvariants(t *testing.T, c *KVCache, r Report, p prompt) {
	t.Helper()
	cfg := c.cfg
	w, d := cfg.Window, cfg.HeadDim
	m := p.n - w
	ranked, sumB := 0, 0
	for l := range cfg.Layers {
		lr := r.Layers[l]
		if lr.Ranked {
			ranked++
			sumB += lr.Budget
		}
		sumKept := 0
		for kv := range cfg.KVHeads {
			v, err := c.View(l, kv)
			if err != nil {
				t.Fatal(err)
			}
			pos := v.Positions
			// 8: nothing twice (strictly increasing), never more than the head had.
			if !slices.IsSorted(pos) || len(slices.Compact(slices.Clone(pos))) != len(pos) || len(pos) > p.n {
				t.Fatalf("layer %d head %d: positions %v are not strictly increasing within [0, %d)", l, kv, pos, p.n)
			}
			// 1: the window is kept.
			if len(pos) < w || pos[len(pos)-w] != int32(m) || pos[len(pos)-1] != int32(p.n-1) {
				t.Fatalf("layer %d head %d: window positions %d..%d not all kept: %v", l, kv, m, p.n-1, pos)
			}
			sumKept += len(pos) - w
			// 7: rows are the original rows, bit for bit.
			for e, at := range pos {
				src := (int(at)*cfg.KVHeads + kv) * d
				for t2 := range d {
					gk, gv := viewAt(v, e*d+t2)
					wk, wv := p.k[l][src+t2], p.v[l][src+t2]
					if math.Float32bits(gk) != math.Float32bits(wk) || math.Float32bits(gv) != math.Float32bits(wv) {
						t.Fatalf("layer %d head %d entry %d (position %d) dim %d: got k=%v v=%v, want k=%v v=%v", l, kv, e, at, t2, gk, gv, wk, wv)
					}
				}
			}
		}
		// 2: in paper mode the heads of a compressed layer share exactly Hkv·b_l.
		if lr.Ranked && cfg.Policy.floor == FloorNone && lr.Budget < m && sumKept != cfg.KVHeads*lr.Budget {
			t.Errorf("layer %d: heads keep %d prefix entries in all, want KVHeads·b_l = %d", l, sumKept, cfg.KVHeads*lr.Budget)
		}
	}
	// 3: the entropy budgets add up to the total, less at most one per layer.
	total := cfg.Layers * (cfg.Budget - w)
	if ranked == cfg.Layers && !cfg.Redistribute && (sumB > total || sumB < total-cfg.Layers) {
		t.Errorf("Σ b_l = %d, want in [%d, %d]", sumB, total-cfg.Layers, total)
	}
}

// viewAt returns element i of a view's keys and values as float32, read
// from the view's exported storage.
func viewAt(v HeadView, i int) (float32, float32) {
	return storedAt(v.Keys, v.Keys16, v.KeyBlocks, v.keys.elem, v.headDim, i),
		storedAt(v.Values, v.Values16, v.ValueBlocks, v.values.elem, v.headDim, i)
}

func storedAt(f32 []float32, f16 []uint16, q []byte, e Element, d, i int) float32 {
	switch {
	case e.quantised():
		rb, row := e.rowBytes(d), make([]float32, d)
		dequantGeneric(row, q[i/d*rb:(i/d+1)*rb], e, d)
		return row[i%d]
	case e == Float16:
		return f16ToF32(f16[i])
	}
	return f32[i]
}

func TestCompressMatchesOracle(t *testing.T) {
	compared, skipped := 0, 0
	for si := range shapes {
		for _, vr := range variants {
			cfg, n := shapeConfig(si)
			vr.set(&cfg)
			t.Run(fmt.Sprintf("shape=%d/%s", si, vr.name), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(si), 7))
				p := randomPrompt(rng, cfg, n)
				p.storedAs(cfg) // the oracle sees what the cache stores
				c := newCache(t, cfg)
				r := p.fill(t, c, 97, false, true)
				checkInvariants(t, c, r, p)

				// Scores against the float64 oracle. Each score is a sum
				// of at most w softmax terms whose logits carry the error
				// of a d-term dot product and whose denominators sum up to
				// n terms: a forward error of (d·|z| + n)·ε₃₂ relative,
				// times a safety factor of 8.
				raw := newCache(t, c.cfg)
				for l := range cfg.Layers {
					p.appendLayer(t, raw, l, n, false)
				}
				e := make([]float64, cfg.Layers)
				oracle := make([][][]float64, cfg.Layers)
				for l := range cfg.Layers {
					got := scoresOf(t, raw, l)
					oracle[l] = p.oracleScores(l)
					e[l] = oracleEntropy(oracle[l])
					top := 0.0
					for _, h := range oracle[l] {
						top = max(top, slices.Max(h))
					}
					tol := 8 * float64(cfg.HeadDim*8+n) * 0x1p-24 * top
					for kv, h := range oracle[l] {
						for i, want := range h {
							if g := float64(got[kv*(n-cfg.Window)+i]); math.Abs(g-want) > tol {
								t.Fatalf("layer %d head %d token %d: score %g, oracle %g (tolerance %g)", l, kv, i, g, want, tol)
							}
						}
					}
					if de := math.Abs(r.Layers[l].Entropy - e[l]); de > 1e-5 {
						t.Errorf("layer %d: entropy %v, oracle %v", l, r.Layers[l].Entropy, e[l])
					}
				}

				// Kept sets against the oracle's where no near-tie decides.
				m := n - cfg.Window
				b, ok := oracleBudgets(e, m, cfg.Layers*(cfg.Budget-cfg.Window), cfg.Redistribute)
				if !ok {
					skipped++
					return
				}
				kept := keptPositions(c)
				for l := range cfg.Layers {
					if r.Layers[l].Budget != b[l] && !(b[l] >= m && r.Layers[l].Budget >= m) {
						t.Fatalf("layer %d: budget %d, oracle %d", l, r.Layers[l].Budget, b[l])
					}
					top := 0.0
					for _, h := range oracle[l] {
						top = max(top, slices.Max(h))
					}
					want, clear := oracleKeep(c.cfg, oracle[l], b[l], 1e-4*top)
					if !clear {
						skipped++
						continue
					}
					compared++
					checkPrefix(t, l, kept[l], want, m)
				}
			})
		}
	}
	checkClearCases(t, compared, skipped)
}

// storedAs replaces the prompt's keys and values with what a cache of
// cfg's element types stores of them, so that an oracle computes from the
// same values.
func (p prompt) storedAs(cfg Config) {
	for l := range p.k {
		roundTo(cfg.KeyElement, p.k[l], cfg.HeadDim)
		roundTo(cfg.ValueElement, p.v[l], cfg.HeadDim)
	}
}

// roundTo replaces the rows of d elements in x with what storage of type e
// holds of them.
func roundTo(e Element, x []float32, d int) {
	switch {
	case e == Float16:
		for i, v := range x {
			x[i] = f16ToF32(f32ToF16(v))
		}
	case e.quantised():
		b := make([]byte, e.rowBytes(d))
		for i := 0; i+d <= len(x); i += d {
			quantiseRow(b, x[i:i+d], e)
			dequantGeneric(x[i:i+d], b, e, d)
		}
	}
}

func TestCascadeEqualsOneShot(t *testing.T) {
	for si := range shapes {
		for _, vr := range variants {
			cfg, n := shapeConfig(si)
			vr.set(&cfg)
			t.Run(fmt.Sprintf("shape=%d/%s", si, vr.name), func(t *testing.T) {
				p := randomPrompt(rand.New(rand.NewPCG(uint64(si), 11)), cfg, n)
				once, cascade := newCache(t, cfg), newCache(t, cfg)
				r1 := p.fill(t, once, 64, false, true)
				r2 := p.fill(t, cascade, n, true, false)
				a, b := keptPositions(once), keptPositions(cascade)
				for l := range a {
					if r1.Layers[l].Budget != r2.Layers[l].Budget {
						t.Errorf("layer %d: budget %d one-shot, %d cascade", l, r1.Layers[l].Budget, r2.Layers[l].Budget)
					}
					for kv := range a[l] {
						if !slices.Equal(a[l][kv], b[l][kv]) {
							t.Errorf("layer %d head %d: one-shot keeps %v, cascade %v", l, kv, a[l][kv], b[l][kv])
						}
					}
				}
				if r1.BytesAfter != r2.BytesAfter {
					t.Errorf("bytes after: one-shot %d, cascade %d", r1.BytesAfter, r2.BytesAfter)
				}
			})
		}
	}
}
