package lava

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// logitError bounds how much rounding keys to float16 can move any logit
// q·k/√d of the given queries: |Δ| ≤ Σ_t |q_t|·|k_t|·2⁻¹¹/√d, maximised over
// queries and keys. Softmax probabilities then move by a factor within
// e^(±2δ).
func logitError(q, k []float32, d int) float64 {
	var worst float64
	for i := 0; i+d <= len(q); i += d {
		for j := 0; j+d <= len(k); j += d {
			var s float64
			for t := range d {
				s += math.Abs(float64(q[i+t]) * float64(k[j+t]))
			}
			worst = max(worst, s)
		}
	}
	return worst * 0x1p-11 / math.Sqrt(float64(d))
}

// With float16 storage, scores, kept sets and decode attention differ from
// float32 storage by no more than rounding the keys and values to float16
// explains.
func TestFloat16AgreesWithFloat32(t *testing.T) {
	attended := 0
	for si := range shapes {
		cfg, n := shapeConfig(si)
		p := randomPrompt(rand.New(rand.NewPCG(uint64(si), 16)), cfg, n)
		cfg = p.cfg
		w, d := cfg.Window, cfg.HeadDim
		m := n - w
		c32 := newCache(t, cfg)
		cfg16 := cfg
		cfg16.KeyElement, cfg16.ValueElement = Float16, Float16
		c16 := newCache(t, cfg16)
		for l := range cfg.Layers {
			p.appendLayer(t, c32, l, n, false)
			p.appendLayer(t, c16, l, n, false)
		}
		for l := range cfg.Layers {
			delta := logitError(p.q[l][m*cfg.Heads*d:], p.k[l], d)
			s32 := scoresOf(t, c32, l)
			s16 := scoresOf(t, c16, l)
			// Every factor of a LAVa score moves multiplicatively: the
			// window attention by e^(±2δ), the value scale by 1 ± 2⁻¹¹;
			// float32 arithmetic adds its own (n + d)·ε₃₂ terms.
			rel := math.Exp(2*delta)*(1+0x1p-11) - 1 + 8*float64(n+8*d)*0x1p-24
			for i := range s32 {
				if diff := math.Abs(float64(s16[i] - s32[i])); diff > rel*float64(s32[i])+1e-30 {
					t.Fatalf("shape %d layer %d entry %d: float16 score %v, float32 %v (bound %g relative)", si, l, i, s16[i], s32[i], rel)
				}
			}
		}
		if _, err := c32.Compress(); err != nil {
			t.Fatal(err)
		}
		if _, err := c16.Compress(); err != nil {
			t.Fatal(err)
		}
		// Decode attention over the same kept entries: compare where the
		// two caches kept the same rows.
		q := p.q[0][(n-1)*cfg.Heads*d : n*cfg.Heads*d]
		o32, o16 := make([]float32, len(q)), make([]float32, len(q))
		for l := range cfg.Layers {
			same := true
			for kv := range cfg.KVHeads {
				a, _ := c32.View(l, kv)
				b, _ := c16.View(l, kv)
				same = same && slices.Equal(a.Positions, b.Positions)
			}
			if !same {
				continue // a near-tie went the other way; scores were checked above
			}
			if err := c32.Attend(l, q, o32); err != nil {
				t.Fatal(err)
			}
			if err := c16.Attend(l, q, o16); err != nil {
				t.Fatal(err)
			}
			attended++
			delta := logitError(q, p.k[l], d)
			var vmax float64
			for _, v := range p.v[l] {
				vmax = max(vmax, math.Abs(float64(v)))
			}
			// Σ|p'−p| ≤ e^(2δ) − 1 and each value moves by ≤ 2⁻¹¹·|v|.
			bound := (math.Exp(2*delta)-1+0x1p-11)*vmax*(1+0x1p-11) + 8*float64(n+4*d)*0x1p-24*vmax
			for i := range o32 {
				if diff := math.Abs(float64(o16[i] - o32[i])); diff > bound {
					t.Fatalf("shape %d layer %d output %d: float16 %v, float32 %v (bound %g)", si, l, i, o16[i], o32[i], bound)
				}
			}
		}
	}
	if attended < 10 {
		t.Errorf("only %d layers kept the same rows in both storages to compare Attend", attended)
	}
}
