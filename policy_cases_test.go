package lava

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// steeredCache returns a one-layer cache with one KV head whose keys are
// one-hot, so that query head h's attention to token i is attn[h][i]
// exactly (up to rounding): its query is √d·log(attn[h]). The last token is
// the window (w = 1); its own share is whatever attn leaves.
func steeredCache(t *testing.T, cfg Config, attn [][]float64) *KVCache {
	t.Helper()
	n := len(attn[0]) + 1
	cfg.Layers, cfg.KVHeads, cfg.HeadDim, cfg.Window, cfg.Heads = 1, 1, n, 1, len(attn)
	c := newCache(t, cfg)
	k := make([]float32, n*n)
	for i := range n {
		k[i*n+i] = 1
	}
	q := make([]float32, n*cfg.Heads*n)
	last := q[(n-1)*cfg.Heads*n:]
	for h, a := range attn {
		rest := 1.0
		for i, x := range a {
			last[h*n+i] = float32(math.Sqrt(float64(n)) * math.Log(x))
			rest -= x
		}
		last[h*n+n-1] = float32(math.Sqrt(float64(n)) * math.Log(rest))
	}
	v := slices.Repeat([]float32{1}, n*n)
	if err := c.Append(0, q, k, v); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Compress(); err != nil {
		t.Fatal(err)
	}
	return c
}

func prefixKept(c *KVCache, kv int) []int32 {
	v, _ := c.View(0, kv)
	return v.Positions[:v.Len()-c.cfg.Policy.windowOf(&c.cfg)]
}

// Max over the group keeps the token one head needs most; the mean keeps
// the token both like moderately.
func TestGQAReductionMaxVersusMean(t *testing.T) {
	attn := [][]float64{{.6, .0001, .35}, {.0001, .4, .35}}
	for _, tc := range []struct {
		pol  Policy
		want int32
	}{{LAVa(), 0}, {SnapKV(), 2}, {AdaSnapKV().WithFloor(FloorAdaKV, 0), 2}} {
		c := steeredCache(t, Config{Budget: 2, Policy: tc.pol.WithPooling(PoolMax, 1)}, attn)
		if got := prefixKept(c, 0); !slices.Equal(got, []int32{tc.want}) {
			t.Errorf("%s keeps %v, want [%d]", tc.pol.Name(), got, tc.want)
		}
	}
}

// With average pooling, LAVa pools each query head and then takes the group
// maximum; the other order would keep token 1.
func TestAvgPoolBeforeGroupMax(t *testing.T) {
	const e = 1e-5
	attn := [][]float64{{e, .8, e, e, e}, {e, e, e, .45, .45}}
	c := steeredCache(t, Config{Budget: 2, Policy: LAVa().WithPooling(PoolAvg, 3)}, attn)
	// pool then max: [.267, .267, .267, .300, .300] → token 3;
	// max then pool: [.267, .267, .417, .300, .300] → token 2.
	if got := prefixKept(c, 0); !slices.Equal(got, []int32{3}) {
		t.Errorf("LAVa with avg pooling keeps %v, want [3]", got)
	}
	// SnapKV means first ([ε, .4, ε, .225, .225]), then pools: token 2.
	c = steeredCache(t, Config{Budget: 2, Policy: SnapKV().WithPooling(PoolAvg, 3)}, attn)
	if got := prefixKept(c, 0); !slices.Equal(got, []int32{2}) {
		t.Errorf("SnapKV with avg pooling keeps %v, want [2]", got)
	}
}

func TestPyramidSchedule(t *testing.T) {
	for _, tc := range []struct {
		bbar, L, m int
		beta       float64
		want       []int
	}{
		{100, 5, 1000, 20, []int{195, 148, 101, 54, 7}},
		// max = 195 ≥ n − w = 150: clamped, min = 2·100 − 150.
		{100, 5, 150, 20, []int{150, 125, 100, 75, 50}},
		// min = ⌊16/5⌋ = 3, max = 29, step = ⌊26/3⌋ = 8.
		{16, 4, 500, 5, []int{29, 21, 13, 5}},
		{16, 1, 500, 5, []int{16}},
	} {
		var got []int
		for l := range tc.L {
			got = append(got, pyramidBudget(tc.bbar, tc.beta, l, tc.L, tc.m))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("PyramidKV(b̄=%d, β=%v, L=%d, m=%d) = %v, want %v", tc.bbar, tc.beta, tc.L, tc.m, got, tc.want)
		}
	}
}

func TestCAKEBudgetsAreExact(t *testing.T) {
	for _, tc := range []struct {
		pref  []float64
		m     []int
		total int
		want  []int
	}{
		// Layer 0 wants 70 of 100 but holds 40: its 30 go to the others
		// evenly, 15 each (not in proportion, which would give 40, 40, 20).
		{[]float64{7, 2, 1}, []int{40, 100, 100}, 100, []int{40, 35, 25}},
		// 33 each and one left over: it goes to the lowest-numbered layer.
		{[]float64{1, 1, 1}, []int{90, 90, 90}, 100, []int{34, 33, 33}},
		{[]float64{5, 3, 2}, []int{10, 10, 10}, 100, []int{10, 10, 10}},
		// Shares 32.25, 0, 10.75: truncated to 32, 0, 10; the one left over
		// goes to layer 0, not to the largest fraction.
		{[]float64{3, 0, 1}, []int{50, 50, 50}, 43, []int{33, 0, 10}},
		// Shares 90, 5, 5; layer 0 capped at 20 gives 35 to each other
		// layer, which caps them at 30 with nowhere left for the rest.
		{[]float64{18, 1, 1}, []int{20, 30, 30}, 100, []int{20, 30, 30}},
		// 7 of excess over two open layers: 4 to the lower, 3 to the upper.
		{[]float64{1, 0, 0}, []int{3, 50, 50}, 10, []int{3, 4, 3}},
	} {
		got := cakeBudgets(tc.pref, tc.m, tc.total, true)
		if !slices.Equal(got, tc.want) {
			t.Errorf("cakeBudgets(%v, %v, %d) = %v, want %v", tc.pref, tc.m, tc.total, got, tc.want)
		}
	}
	// Random preferences: the sum is exact, no layer exceeds its prefix, and
	// the cascade's provisional budgets bound the final ones.
	rng := rand.New(rand.NewPCG(3, 3))
	for range 500 {
		L := 1 + rng.IntN(8)
		pref, m := make([]float64, L), make([]int, L)
		for l := range pref {
			pref[l], m[l] = rng.ExpFloat64(), 1+rng.IntN(60)
		}
		total := rng.IntN(40 * L)
		b := cakeBudgets(pref, m, total, true)
		sum, cap := 0, 0
		for l := range b {
			sum += b[l]
			cap += m[l]
			if b[l] < 0 || b[l] > m[l] {
				t.Fatalf("budget %d outside [0, %d]", b[l], m[l])
			}
		}
		if sum != min(total, cap) {
			t.Fatalf("cakeBudgets(%v, %v, %d) = %v sums to %d", pref, m, total, b, sum)
		}
		for k := 1; k < L; k++ {
			part := cakeBudgets(pref[:k], m[:k], total, false)
			for l := range part {
				if part[l] < b[l] {
					t.Fatalf("provisional budget %d of layer %d with %d layers is below the final %d", part[l], l, k, b[l])
				}
			}
		}
	}
}

// H2O's online accumulation equals the column sums of the full causal
// attention (summed over the group), whatever the chunking.
func TestH2OAccumulation(t *testing.T) {
	cfg := Config{Layers: 1, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 4, Budget: 8, Policy: H2O()}
	const n = 150
	p := randomPrompt(rand.New(rand.NewPCG(8, 8)), cfg, n)
	for _, chunk := range []int{1, 7, 33, n} {
		c := newCache(t, cfg)
		p.appendLayer(t, c, 0, chunk, false)
		for kv := range 2 {
			want := make([]float64, n)
			for qh := kv * 2; qh < kv*2+2; qh++ {
				for j := range n {
					for i, a := range p.attention(0, qh, j) {
						want[i] += a
					}
				}
			}
			for i, w := range want {
				// Each column sums up to n softmax terms.
				if got := float64(c.layers[0].heads[kv].heavy[i]); math.Abs(got-w) > 8*n*0x1p-24*max(w, 1) {
					t.Fatalf("chunk %d head %d token %d: accumulated %v, column sum %v", chunk, kv, i, got, w)
				}
			}
		}
	}
}

// Spec invariant 6: with g = 1 and equal value norms, LAVa with uniform
// layer budgets is joint-top-k SnapKV (α = 0).
func TestLAVaIsJointSnapKVWithoutGroupsOrValueScale(t *testing.T) {
	cfg := Config{Layers: 3, Heads: 4, KVHeads: 4, HeadDim: 16, Window: 8, Budget: 24}
	p := randomPrompt(rand.New(rand.NewPCG(6, 6)), cfg, 400)
	for l := range p.v {
		for i := range p.v[l] {
			p.v[l][i] = float32(1 - 2*(i%2)) // every row's L1 norm is HeadDim
		}
	}
	var kept [2][][][]int32
	for i, pol := range []Policy{LAVaUniformLayers(), AdaSnapKV().WithFloor(FloorNone, 0)} {
		cfg.Policy = pol
		c := newCache(t, cfg)
		p.fill(t, c, 400, false, true)
		kept[i] = keptPositions(c)
	}
	if !slices.EqualFunc(kept[0], kept[1], func(a, b [][]int32) bool { return slices.EqualFunc(a, b, slices.Equal) }) {
		t.Errorf("LAVa-layer keeps %v, Ada-SnapKV(0) %v", kept[0], kept[1])
	}
}

func TestPolicyParameterErrors(t *testing.T) {
	base := Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 8, Budget: 32}
	for _, tc := range []struct {
		pol  Policy
		want string
	}{
		{PyramidKV(0), "β = 0"},
		{PyramidKV(-1), "β = -1"},
		{PyramidKV(0.7), "β = 0.7"},
		{PyramidKV(math.Inf(1)), "β = +Inf"},
		{AdaSnapKV().WithFloor(FloorAdaKV, 1), "α = 1"},
		{AdaSnapKV().WithFloor(FloorAdaKV, -0.1), "α = -0.1"},
		{AdaPyramidKV(20).WithFloor(FloorAdaKV, 2), "α = 2"},
		{AdaPyramidKV(math.NaN()), "β = NaN"},
		{LAVa().WithFloor(FloorNone, 0.2), "α = 0.2 is set with FloorNone"},
		{SnapKV().WithFloor(FloorAdaKV, 0.2), "no head floor"},
		{H2O().WithPooling(PoolMax, 7), "does not pool"},
		{StreamingLLM(-1), "sinks = -1"},
		{StreamingLLM(25), "sinks = 25"},
		{CAKE(0, 1, 200), "τ1 = 0"},
		{CAKE(1, -1, 200), "τ2 = -1"},
		{CAKE(1, 1, -5), "γ = -5"},
		{CAKE(5e-324, 1, 200), "τ1 = 5e-324"},
		{CAKE(1, math.Inf(1), 200), "τ2 = +Inf"},
		{CAKE(1, 1, math.Inf(1)), "γ = +Inf"},
		{CAKE(1, 1, 200).WithPooling(PoolMax, 4), "kernel = 4"},
		{Custom("mine", nil, EntropyLayers, JointHeads), "Scorer is nil"},
	} {
		cfg := base
		cfg.Policy = tc.pol
		_, err := New(cfg)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an ErrInvalid containing %q", tc.pol.Name(), err, tc.want)
		}
	}
	cfg := base
	cfg.Policy, cfg.Window = CAKE(1, 1, 200), 1
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "Config.Window = 1") {
		t.Errorf("CAKE with a window of 1: New = %v, want an error naming Config.Window", err)
	}
	// TOVA needs no window; its budget only has to exceed 1.
	cfg = base
	cfg.Policy, cfg.Budget = TOVA(), 4
	if _, err := New(cfg); err != nil {
		t.Errorf("TOVA with Budget 4 < Window: %v", err)
	}
}

// decodeSteps appends steps random decode tokens to every layer of c and
// attends, returning the head lengths after each step.
func decodeSteps(t *testing.T, c *KVCache, rng *rand.Rand, steps int) {
	t.Helper()
	decodeStepsOf(t, c, rng, steps, 1)
}

// decodeStepsOf runs decode steps that append and attend tokens tokens at
// a time in every layer (a speculative draft's shape).
func decodeStepsOf(t *testing.T, c *KVCache, rng *rand.Rand, steps, tokens int) {
	t.Helper()
	cfg := c.cfg
	q := make([]float32, tokens*cfg.Heads*cfg.HeadDim)
	k := make([]float32, tokens*cfg.KVHeads*cfg.HeadDim)
	out := make([]float32, len(q))
	for range steps {
		for l := range cfg.Layers {
			for i := range q {
				q[i] = float32(rng.NormFloat64() * 2)
			}
			for i := range k {
				k[i] = float32(rng.NormFloat64())
			}
			if err := c.Append(l, nil, k, k); err != nil {
				t.Fatal(err)
			}
			if err := c.Attend(l, q, out); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestDecodeEviction(t *testing.T) {
	base := Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 4, Budget: 16}
	const n, steps = 100, 30
	for _, pol := range []Policy{StreamingLLM(3), TOVA(), CAKE(1, 1, 200), LAVa(), H2O(), SnapKV()} {
		cfg := base
		cfg.Policy = pol
		p := randomPrompt(rand.New(rand.NewPCG(2, 4)), cfg, n)
		c := newCache(t, cfg)
		r := p.fill(t, c, n, false, family(pol) != "h2o")
		after := make([][]int, cfg.Layers)
		for l := range after {
			after[l] = r.Layers[l].Kept
		}
		decodeSteps(t, c, rand.New(rand.NewPCG(5, 5)), steps)
		for l := range cfg.Layers {
			for kv := range cfg.KVHeads {
				v, _ := c.View(l, kv)
				pos := v.Positions
				if !slices.IsSorted(pos) || pos[len(pos)-1] != int32(n+steps-1) && family(pol) != "tova" {
					t.Fatalf("%s layer %d head %d: positions %v", pol.Name(), l, kv, pos)
				}
				want := after[l][kv] + steps // no decode eviction
				switch family(pol) {
				case "streamingllm", "tova":
					want = cfg.Budget
				case "cake":
					want = after[l][kv]
				}
				if v.Len() != want {
					t.Errorf("%s layer %d head %d: %d entries after %d decode steps, want %d", pol.Name(), l, kv, v.Len(), steps, want)
				}
				if family(pol) == "streamingllm" {
					wantPos := []int32{0, 1, 2}
					for i := n + steps - (cfg.Budget - 3); i < n+steps; i++ {
						wantPos = append(wantPos, int32(i))
					}
					if !slices.Equal(pos, wantPos) {
						t.Errorf("StreamingLLM layer %d head %d keeps %v, want %v", l, kv, pos, wantPos)
					}
				}
				if family(pol) == "cake" {
					// CAKE's window: the most recent Window tokens stay.
					for j := range cfg.Window {
						if pos[len(pos)-cfg.Window+j] != int32(n+steps-cfg.Window+j) {
							t.Errorf("CAKE layer %d head %d dropped a recent token: %v", l, kv, pos)
						}
					}
				}
				if family(pol) == "tova" {
					v0, _ := c.View(l, 0)
					if !slices.Equal(pos, v0.Positions) {
						t.Errorf("TOVA layer %d: heads keep different sets", l)
					}
				}
			}
		}
	}
}

// TOVA evicts, after attending, the entry with the least attention averaged
// over all query heads.
// The policies that evict while decoding stay at their limit when a step
// appends and attends several tokens at once.
func TestDecodeEvictionMultiToken(t *testing.T) {
	base := Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 4, Budget: 16}
	const n, steps, tokens = 100, 10, 3
	for _, pol := range []Policy{StreamingLLM(3), TOVA(), CAKE(1, 1, 200)} {
		cfg := base
		cfg.Policy = pol
		p := randomPrompt(rand.New(rand.NewPCG(2, 4)), cfg, n)
		c := newCache(t, cfg)
		r := p.fill(t, c, n, false, true)
		decodeStepsOf(t, c, rand.New(rand.NewPCG(5, 5)), steps, tokens)
		for l := range cfg.Layers {
			for kv := range cfg.KVHeads {
				want := cfg.Budget
				if family(pol) == "cake" {
					want = r.Layers[l].Kept[kv]
				}
				v, _ := c.View(l, kv)
				if v.Len() != want || !slices.IsSorted(v.Positions) {
					t.Errorf("%s layer %d head %d: %d entries after %d steps of %d tokens, want %d", pol.Name(), l, kv, v.Len(), steps, tokens, want)
				}
			}
		}
	}
}

func TestTOVAEvictsLeastAttended(t *testing.T) {
	cfg := Config{Layers: 1, Heads: 4, KVHeads: 2, HeadDim: 8, Budget: 6, Policy: TOVA()}
	p := randomPrompt(rand.New(rand.NewPCG(7, 1)), cfg, 20)
	c := newCache(t, cfg)
	p.fill(t, c, 20, false, true)
	rng := rand.New(rand.NewPCG(9, 9))
	q := make([]float32, 32)
	k := make([]float32, 16)
	for i := range q {
		q[i] = float32(rng.NormFloat64())
	}
	for i := range k {
		k[i] = float32(rng.NormFloat64())
	}
	if err := c.Append(0, nil, k, k); err != nil {
		t.Fatal(err)
	}
	before := keptPositions(c)[0][0]
	// The mean attention over all query heads, in float64.
	mean := make([]float64, len(before))
	for h := range 4 {
		v, _ := c.View(0, h/2)
		z := make([]float64, v.Len())
		var sum float64
		for i := range z {
			for t2 := range 8 {
				z[i] += float64(q[h*8+t2]) * float64(v.Keys[i*8+t2])
			}
			z[i] = math.Exp(z[i] / math.Sqrt(8))
			sum += z[i]
		}
		for i := range z {
			mean[i] += z[i] / sum / 4
		}
	}
	least := 0
	for i := range mean {
		if mean[i] < mean[least] {
			least = i
		}
	}
	out := make([]float32, 32)
	if err := c.Attend(0, q, out); err != nil {
		t.Fatal(err)
	}
	want := slices.Delete(slices.Clone(before), least, least+1)
	for kv := range 2 {
		if got := keptPositions(c)[0][kv]; !slices.Equal(got, want) {
			t.Errorf("head %d keeps %v after Attend, want %v (evicting position %d)", kv, got, want, before[least])
		}
	}
}

// Decode eviction allocates nothing either.
func TestDecodeEvictionZeroAllocs(t *testing.T) {
	for _, pol := range []Policy{StreamingLLM(4), TOVA(), CAKE(1, 1, 200)} {
		cfg := Config{Layers: 1, Heads: 8, KVHeads: 2, HeadDim: 16, Window: 8, Budget: 32, Policy: pol}
		p := randomPrompt(rand.New(rand.NewPCG(1, 1)), cfg, 300)
		c := newCache(t, cfg)
		p.fill(t, c, 300, false, false)
		q := p.q[0][:cfg.Heads*cfg.HeadDim]
		k := p.k[0][:cfg.KVHeads*cfg.HeadDim]
		out := make([]float32, len(q))
		step := func() {
			if err := c.Append(0, nil, k, k); err != nil {
				t.Fatal(err)
			}
			if err := c.Attend(0, q, out); err != nil {
				t.Fatal(err)
			}
		}
		step() // sizes the scratch
		if a := allocsIn(100, step); a != 0 {
			t.Errorf("%s: %d allocations in 100 decode steps, want 0", pol.Name(), a)
		}
	}
}

func TestPolicyByName(t *testing.T) {
	for _, name := range PolicyNames() {
		p, err := PolicyByName(strings.ToUpper(name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.EqualFold(strings.ReplaceAll(p.Name(), "-", ""), strings.ReplaceAll(name, "-", "")) {
			t.Errorf("PolicyByName(%q).Name() = %q", name, p.Name())
		}
		cfg := Config{Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 4, Budget: 64, Policy: p}
		if _, err := New(cfg); err != nil {
			t.Errorf("%s with default parameters: %v", name, err)
		}
	}
	if _, err := PolicyByName("snap"); err == nil || !strings.Contains(err.Error(), "snapkv") {
		t.Errorf("PolicyByName(\"snap\") = %v, want an error listing the names", err)
	}
}
