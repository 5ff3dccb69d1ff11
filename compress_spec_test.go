package lava

import (
	"math"
	"slices"
	"testing"
)

// The hand-checkable case of spec section 9.
var specScores = [2][2][]float32{
	{
		{.40, .30, .20, .10, .08, .05, .01, .01, .01, .01},
		{.02, .03, .02, .02, .03, .02, .02, .02, .03, .02},
	},
	{
		{.05, .06, .05, .04, .05, .06, .05, .04, .05, .05},
		{.06, .05, .04, .05, .06, .05, .04, .05, .06, .05},
	},
}

// specCache returns an empty cache of the spec case's shape.
func specCache(t *testing.T, floor FloorMode) *KVCache {
	t.Helper()
	c, err := New(Config{Layers: 2, Heads: 2, KVHeads: 2, HeadDim: 1, Window: 2, Budget: 6, Policy: LAVa().WithFloor(floor, alphaFor(floor))})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// specAppend appends 12 tokens to layer l, whose key and value encode
// layer·10000 + head·100 + token.
func specAppend(t *testing.T, c *KVCache, l int) {
	t.Helper()
	q, k := make([]float32, 12*2), make([]float32, 12*2)
	for tok := range 12 {
		for kv := range 2 {
			k[tok*2+kv] = float32(l*10000 + kv*100 + tok)
		}
	}
	if err := c.Append(l, q, k, k); err != nil {
		t.Fatal(err)
	}
}

func specFresh(layers ...int) []layerScores {
	var f []layerScores
	for _, l := range layers {
		s := slices.Concat(specScores[l][0], specScores[l][1])
		f = append(f, layerScores{l: l, s: s, layerStats: layerStats{entropy: entropy(s)}, cand: []int{10, 10}, off: []int{0, 10, 20}})
	}
	return f
}

// keptPositions returns the positions each head of each layer holds.
func keptPositions(c *KVCache) [][][]int32 {
	out := make([][][]int32, c.cfg.Layers)
	for l := range out {
		out[l] = make([][]int32, c.cfg.KVHeads)
		for kv := range out[l] {
			v, _ := c.View(l, kv)
			out[l][kv] = slices.Clone(v.Positions)
		}
	}
	return out
}

func TestSpecCase(t *testing.T) {
	window := []int32{10, 11}
	for _, tc := range []struct {
		name  string
		floor FloorMode
		head1 []int32 // layer 0 head 1's kept prefix
	}{
		{"paper", FloorNone, nil},
		{"reference", FloorReference, []int32{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := [][][]int32{
				{slices.Concat([]int32{0, 1, 2, 3, 4, 5}, window), slices.Concat(tc.head1, window)},
				{slices.Concat([]int32{0, 1, 2, 4, 5}, window), slices.Concat([]int32{0, 4, 8}, window)},
			}
			for _, flow := range []string{"one-shot", "cascade"} {
				c := specCache(t, tc.floor)
				var r Report
				if flow == "cascade" {
					specAppend(t, c, 0)
					c.apply(specFresh(0), 1)
					specAppend(t, c, 1)
					c.apply(specFresh(1), 1)
					r = c.report(0, specFresh(1))
				} else {
					specAppend(t, c, 0)
					specAppend(t, c, 1)
					c.apply(specFresh(0, 1), 1)
					r = c.report(0, specFresh(0, 1))
				}
				for l, e := range []float64{0.751126, 0.997044} {
					if got := r.Layers[l].Entropy; math.Abs(got-e) > 5e-7 {
						t.Errorf("%s: layer %d entropy = %.7f, want %.6f", flow, l, got, e)
					}
					if got := r.Layers[l].Budget; got != []int{3, 4}[l] {
						t.Errorf("%s: layer %d budget = %d, want %d", flow, l, got, []int{3, 4}[l])
					}
				}
				got := keptPositions(c)
				for l := range want {
					for kv := range want[l] {
						if !slices.Equal(got[l][kv], want[l][kv]) {
							t.Errorf("%s: layer %d head %d keeps %v, want %v", flow, l, kv, got[l][kv], want[l][kv])
						}
					}
				}
			}
		})
	}
}

// The score order of layer 1 (spec: head 0 keeps [1, 5, 0, 2, 4], head 1
// [0, 4, 8]) follows from ranking by score with ties to the lower index.
func TestSpecRankOrder(t *testing.T) {
	_, r := rankLayer(slices.Concat(specScores[1][0], specScores[1][1]), []int{0, 10, 20}, true, &rankScratch{})
	var h0, h1 []int32
	for _, s := range r[:8] {
		if s.idx < 10 {
			h0 = append(h0, s.idx)
		} else {
			h1 = append(h1, s.idx-10)
		}
	}
	if !slices.Equal(h0, []int32{1, 5, 0, 2, 4}) || !slices.Equal(h1, []int32{0, 4, 8}) {
		t.Errorf("layer 1 winners by head = %v, %v; want [1 5 0 2 4], [0 4 8]", h0, h1)
	}
}
