package lava

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// H2O with prompt chunks with and without queries, in every order: Compress
// either fails with ErrInvalid or gives the result of a cache that saw every
// query (it used to panic when a chunk with queries followed one without).
func TestH2OChunksWithAndWithoutQueries(t *testing.T) {
	cfg := Config{Layers: 1, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 4, Budget: 12, Policy: H2O()}
	const n, chunk = 40, 10
	p := randomPrompt(rand.New(rand.NewPCG(4, 4)), cfg, n)
	full := newCache(t, cfg)
	p.fill(t, full, chunk, false, false)
	want := keptPositions(full)
	qrow, kvrow := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	for mask := range 1 << (n / chunk) { // bit c set: chunk c comes without queries
		c := newCache(t, cfg)
		for ci := range n / chunk {
			lo, hi := ci*chunk, (ci+1)*chunk
			q := p.q[0][lo*qrow : hi*qrow]
			if mask>>ci&1 == 1 {
				q = nil
			}
			if err := c.Append(0, q, p.k[0][lo*kvrow:hi*kvrow], p.v[0][lo*kvrow:hi*kvrow]); err != nil {
				t.Fatal(err)
			}
		}
		_, err := c.Compress()
		switch {
		case mask == 0 && err != nil:
			t.Fatalf("every query given: %v", err)
		case mask == 0:
			if got := keptPositions(c); !slices.EqualFunc(got, want, func(a, b [][]int32) bool { return slices.EqualFunc(a, b, slices.Equal) }) {
				t.Errorf("kept %v, want %v", got, want)
			}
		case err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "queries"):
			t.Errorf("chunks without queries %04b: Compress = %v, want an ErrInvalid about missing queries", mask, err)
		}
	}
}

// Keys and queries whose products overflow float32 give the same error
// under every policy that reads attention.
func TestOverflowingScoresRejected(t *testing.T) {
	for _, pol := range allPolicies {
		if pol.queries == queriesNone {
			continue // positions or chance: no attention to overflow
		}
		cfg := Config{Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 4, Window: 2, Budget: 4, Policy: pol}
		c := newCache(t, cfg)
		const n = 12
		q := slices.Repeat([]float32{3e19}, n*cfg.Heads*cfg.HeadDim)
		k := slices.Repeat([]float32{3e19}, n*cfg.KVHeads*cfg.HeadDim)
		if err := c.Append(0, q, k, make([]float32, len(k))); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Compress(); err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not finite") {
			t.Errorf("%s: Compress = %v, want an ErrInvalid saying scores are not finite", pol.Name(), err)
		}
	}
}

// Two prefix tokens with identical keys, values and neighbourhoods get
// bit-identical scores under every policy, wherever they fall relative to
// the kernels' vector bodies and tails, so the lower index wins the tie.
func TestIdenticalTokensTie(t *testing.T) {
	for n := 30; n < 70; n += 3 {
		testIdenticalTokensTie(t, n)
	}
}

func testIdenticalTokensTie(t *testing.T, n int) {
	cfg := Config{Layers: 1, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 8, Budget: 12}
	p := randomPrompt(rand.New(rand.NewPCG(8, uint64(n))), cfg, n)
	kvrow := cfg.KVHeads * cfg.HeadDim
	// Tokens 0..n−w−1 all share one key and value: every prefix score of a
	// head must be the same number.
	for i := range n - cfg.Window {
		copy(p.k[0][i*kvrow:(i+1)*kvrow], p.k[0][:kvrow])
		copy(p.v[0][i*kvrow:(i+1)*kvrow], p.v[0][:kvrow])
	}
	for _, pol := range allPolicies {
		if pol.queries == queriesNone || family(pol) == "h2o" || family(pol) == "tova" {
			continue // scores by position or chance; H2O and TOVA see causal prefixes of different lengths
		}
		cfg.Policy = pol
		if pol.kernel != 0 {
			cfg.Policy = pol.WithPooling(PoolMax, 1) // no pooling edges
		}
		c := newCache(t, cfg)
		p.appendLayer(t, c, 0, n, false)
		s := scoresOf(t, c, 0)
		m := n - c.cfg.Policy.windowOf(&c.cfg)
		for kv := range cfg.KVHeads {
			h := s[kv*m : (kv+1)*m]
			for i := range h {
				if math.Float32bits(h[i]) != math.Float32bits(h[0]) {
					t.Errorf("n = %d, %s head %d: token %d scores %v, token 0 %v (identical inputs)", n, pol.Name(), kv, i, h[i], h[0])
					break
				}
			}
		}
	}
}

// DecodeReserve holds on every compaction path: after Compress, decode
// Appends up to the reserve do not allocate, whether Compress moved the
// heads to new arrays or compacted them in place.
func TestDecodeReserveBothPaths(t *testing.T) {
	for _, tc := range []struct {
		name    string
		budget  int
		reserve int
	}{
		{"freed to new arrays", 16, 50},             // 66 rows fill at most half of 300
		{"compacted in place", 200, 50},             // 250 rows fit in 300
		{"moved for lack of the reserve", 200, 200}, // 400 rows do not
	} {
		cfg := Config{Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 8, Window: 4, Budget: tc.budget, DecodeReserve: tc.reserve, Policy: Random(1)}
		const n = 300
		p := randomPrompt(rand.New(rand.NewPCG(6, 6)), cfg, n+tc.reserve)
		c := newCache(t, cfg)
		p.appendLayerRange(t, c, 0, 0, n) // storage for exactly n rows
		if _, err := c.Compress(); err != nil {
			t.Fatal(err)
		}
		// Every allocation of the reserve's Appends counts (allocsIn).
		next := n
		if allocs := allocsIn(tc.reserve-1, func() {
			p.appendLayerRange(t, c, 0, next, next+1)
			next++
		}); allocs != 0 {
			t.Errorf("%s: %d allocations in %d decode Appends within the reserve", tc.name, allocs, tc.reserve)
		}
	}
}

// The floor modes' head capacities, computed by hand: cap =
// round_half_even((1−α)·c + F), F = ⌊α·b_l⌋ (AdaKV) or ⌊α·B⌋ (reference),
// at most the prefix m.
func TestHeadCapsByHand(t *testing.T) {
	for _, tc := range []struct {
		won        []int
		b, m, B    int
		mode       FloorMode
		alpha      float64
		want       []int
		arithmetic string
	}{
		{[]int{17, 3, 0}, 10, 40, 12, FloorAdaKV, 0.2, []int{16, 4, 2}, "F = 2: 15.6, 4.4, 2"},
		{[]int{3, 1}, 4, 40, 6, FloorAdaKV, 0.5, []int{4, 2}, "F = 2: 3.5 → 4, 2.5 → 2 (half to even)"},
		{[]int{6, 0}, 3, 10, 6, FloorReference, 0.2, []int{6, 1}, "F = ⌊1.2⌋ = 1: 5.8, 1 (spec §9)"},
		{[]int{6, 0}, 3, 10, 6, FloorAdaKV, 0.2, []int{5, 0}, "F = ⌊0.6⌋ = 0: 4.8, 0"},
		{[]int{10, 0}, 10, 10, 12, FloorAdaKV, 0.2, []int{10, 2}, "F = 2: 10, 2, capped at m = 10"},
		{[]int{7, 1}, 4, 10, 6, FloorAdaKV, 0, []int{7, 1}, "α = 0: the paper's caps"},
		{[]int{7, 1}, 4, 10, 6, FloorNone, 0, []int{7, 1}, "no floor"},
	} {
		if got := headCaps(tc.won, tc.b, slices.Repeat([]int{tc.m}, len(tc.won)), tc.B, tc.mode, tc.alpha); !slices.Equal(got, tc.want) {
			t.Errorf("headCaps(%v, b=%d, m=%d, B=%d, %v, α=%v) = %v, want %v (%s)", tc.won, tc.b, tc.m, tc.B, tc.mode, tc.alpha, got, tc.want, tc.arithmetic)
		}
	}
}
