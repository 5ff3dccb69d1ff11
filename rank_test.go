package lava

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// rankAllByCompare is the joint ranking by its definition: every flat index
// of s sorted by byRank (higher score, then lower index).
func rankAllByCompare(s []float32) []scored {
	r := make([]scored, len(s))
	for i, v := range s {
		r[i] = scored{v, int32(i)}
	}
	slices.SortFunc(r, byRank)
	return r
}

// rankRowsByCompare is one head's ranking by its definition.
func rankRowsByCompare(s []float32) []int32 {
	r := make([]int32, len(s))
	for i := range r {
		r[i] = int32(i)
	}
	slices.SortFunc(r, func(a, b int32) int { return byRank(scored{s[a], a}, scored{s[b], b}) })
	return r
}

// rankLayer's packed-key sort gives exactly the comparison sorts' rankings,
// on both sides of radixMin, for heads of different and zero lengths, with
// ties, +0 beside −0, negative scores, subnormals, and scores that share
// their high bytes (the radix passes skipped).
func TestRankLayerMatchesCompare(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	draws := map[string]func() float32{
		"uniform":  func() float32 { return rng.Float32() },
		"ties":     func() float32 { return float32(rng.IntN(5)) / 4 },
		"signed":   func() float32 { return []float32{0, float32(math.Copysign(0, -1)), -1, 1, -0.5, 2}[rng.IntN(6)] },
		"normal":   func() float32 { return float32(rng.NormFloat64()) },
		"close":    func() float32 { return 1 + float32(rng.IntN(1000))*0x1p-23 },
		"tiny":     func() float32 { return float32(rng.IntN(8)) * 0x1p-149 },
		"extremes": func() float32 { return []float32{math.MaxFloat32, -math.MaxFloat32, 0x1p-126, 1}[rng.IntN(4)] },
	}
	sc := &rankScratch{}
	for name, draw := range draws {
		for _, heads := range [][]int{{0}, {1}, {7}, {3, 0, 5}, {511}, {512}, {300, 0, 300}, {4064, 4064, 4064}, {0, 2000, 1}} {
			t.Run(fmt.Sprintf("%s/%v", name, heads), func(t *testing.T) {
				off := []int{0}
				for _, m := range heads {
					off = append(off, off[len(off)-1]+m)
				}
				s := make([]float32, off[len(heads)])
				for i := range s {
					s[i] = draw()
				}
				orders, winners := rankLayer(s, off, true, sc)
				if want := rankAllByCompare(s); !slices.EqualFunc(winners, want, func(a, b scored) bool {
					return a.idx == b.idx && math.Float32bits(a.score) == math.Float32bits(b.score)
				}) {
					t.Fatalf("joint ranking differs from the comparison sort's")
				}
				for kv := range heads {
					if want := rankRowsByCompare(s[off[kv]:off[kv+1]]); !slices.Equal(orders[kv], want) {
						t.Fatalf("head %d: ranking %v, want %v", kv, orders[kv][:min(8, len(orders[kv]))], want[:min(8, len(want))])
					}
				}
				if orders2, w := rankLayer(s, off, false, sc); w != nil || !slices.EqualFunc(orders2, orders, slices.Equal) {
					t.Fatalf("without joint: winners %v, or head rankings that differ", w != nil)
				}
			})
		}
	}
}
