package lava

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// prompt is the model data of one random prompt for every layer, kept so
// that float64 oracles can recompute what the cache computes.
type prompt struct {
	cfg     Config
	n       int
	q, k, v [][]float32 // per layer: [n][Heads][d], [n][KVHeads][d], [n][KVHeads][d]
}

// randomPrompt draws keys and queries from a normal distribution (queries
// scaled so that attention is peaked, as in trained models) and values with
// a different scale per head, so that heads' value norms differ.
func randomPrompt(rng *rand.Rand, cfg Config, n int) prompt {
	cfg, err := cfg.withDefaults()
	if err != nil {
		panic(err)
	}
	p := prompt{cfg: cfg, n: n}
	d := cfg.HeadDim
	for range cfg.Layers {
		q := make([]float32, n*cfg.Heads*d)
		k := make([]float32, n*cfg.KVHeads*d)
		v := make([]float32, n*cfg.KVHeads*d)
		for i := range q {
			q[i] = float32(rng.NormFloat64() * 2)
		}
		for i := range k {
			k[i] = float32(rng.NormFloat64())
		}
		scale := make([]float64, cfg.KVHeads)
		for kv := range scale {
			scale[kv] = 0.5 + 1.5*rng.Float64()
		}
		for i := range v {
			v[i] = float32(rng.NormFloat64() * scale[(i/d)%cfg.KVHeads])
		}
		p.q, p.k, p.v = append(p.q, q), append(p.k, k), append(p.v, v)
	}
	return p
}

// appendLayer appends the prompt's tokens of layer l to c in chunks of at
// most chunk tokens. Only the last Window tokens carry queries when sparseQ.
func (p prompt) appendLayer(t testing.TB, c *KVCache, l, chunk int, sparseQ bool) {
	t.Helper()
	qrow, kvrow := p.cfg.Heads*p.cfg.HeadDim, p.cfg.KVHeads*p.cfg.HeadDim
	for lo := 0; lo < p.n; lo += chunk {
		hi := min(p.n, lo+chunk)
		q := p.q[l][lo*qrow : hi*qrow]
		if sparseQ && hi <= p.n-c.cfg.Window {
			q = nil
		}
		if err := c.Append(l, q, p.k[l][lo*kvrow:hi*kvrow], p.v[l][lo*kvrow:hi*kvrow]); err != nil {
			t.Fatal(err)
		}
	}
}

// fill appends the prompt to c layer by layer, compressing after each layer
// when cascade is set and once at the end otherwise.
func (p prompt) fill(t testing.TB, c *KVCache, chunk int, cascade, sparseQ bool) Report {
	t.Helper()
	var r Report
	var err error
	for l := range p.cfg.Layers {
		p.appendLayer(t, c, l, chunk, sparseQ)
		if cascade {
			if r, err = c.Compress(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !cascade {
		if r, err = c.Compress(); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// oracleScores recomputes the LAVa scores of layer l in float64, plainly
// from the spec: softmax over all keys up to each window query's position,
// window mean, pooling per query head, max over the group, times the
// largest L1 norm of the head's prefix values.
func (p prompt) oracleScores(l int) [][]float64 {
	cfg := p.cfg
	d, w, g := cfg.HeadDim, cfg.Window, cfg.Heads/cfg.KVHeads
	m := p.n - w
	val := func(kv, i int) []float32 { return p.v[l][(i*cfg.KVHeads+kv)*d:][:d] }
	s := make([][]float64, cfg.KVHeads)
	for kv := range s {
		s[kv] = make([]float64, m)
		for qh := kv * g; qh < (kv+1)*g; qh++ {
			abar := make([]float64, m)
			for j := range w {
				for i, a := range p.attention(l, qh, m+j)[:m] {
					abar[i] += a / float64(w)
				}
			}
			pol := cfg.Policy.withDefaults()
			r := pol.kernel / 2
			for i := range m {
				var pooled float64
				for t := max(0, i-r); t <= min(m-1, i+r); t++ {
					if pol.pool == PoolMax {
						pooled = max(pooled, abar[t])
					} else {
						pooled += abar[t] / float64(pol.kernel)
					}
				}
				s[kv][i] = max(s[kv][i], pooled)
			}
		}
		var vbar float64
		for i := range m {
			var n float64
			for _, x := range val(kv, i) {
				n += math.Abs(float64(x))
			}
			vbar = max(vbar, n)
		}
		for i := range s[kv] {
			s[kv][i] *= vbar
		}
	}
	return s
}

// oracleEntropy is spec section 5's normalised entropy in float64.
func oracleEntropy(s [][]float64) float64 {
	var total float64
	var count int
	for _, h := range s {
		for _, v := range h {
			total += v
			count++
		}
	}
	var e float64
	for _, h := range s {
		for _, v := range h {
			p := v / (total + 1e-16)
			e -= p * math.Log(p+1e-16)
		}
	}
	return e / math.Log(float64(count))
}

// oracleKeep returns the prefix indices each head keeps with per-head budget
// b (spec section 4), sorted, and whether the choice is clear: no two scores
// on either side of a cut are within tol of each other without being equal.
func oracleKeep(cfg Config, s [][]float64, b int, tol float64) ([][]int, bool) {
	m := len(s[0])
	type ent struct {
		v     float64
		kv, i int
	}
	var all []ent
	for kv, h := range s {
		for i, v := range h {
			all = append(all, ent{v, kv, i})
		}
	}
	better := func(a, b ent) int {
		switch {
		case a.v > b.v:
			return -1
		case a.v < b.v:
			return 1
		}
		return (a.kv*m + a.i) - (b.kv*m + b.i)
	}
	clear := func(r []ent, k int) bool {
		if k <= 0 || k >= len(r) {
			return true
		}
		a, b := r[k-1].v, r[k].v
		return a == b || a-b > tol
	}
	keep := make([][]int, len(s))
	if b >= m {
		for kv := range keep {
			for i := range m {
				keep[kv] = append(keep[kv], i)
			}
		}
		return keep, true
	}
	slices.SortFunc(all, better)
	k := len(s) * b
	ok := clear(all, k)
	won := make([]int, len(s))
	for _, e := range all[:k] {
		won[e.kv]++
	}
	caps := oracleCaps(won, b, m, cfg.Budget, cfg.Policy.withDefaults())
	for kv, h := range s {
		var r []ent
		for i, v := range h {
			r = append(r, ent{v, kv, i})
		}
		slices.SortFunc(r, better)
		ok = ok && clear(r, caps[kv])
		for _, e := range r[:caps[kv]] {
			keep[kv] = append(keep[kv], e.i)
		}
		slices.Sort(keep[kv])
	}
	return keep, ok
}

// oracleBudgets is spec section 5's layer split in float64, and whether no
// budget sits within 1e-6 of an integer boundary.
func oracleBudgets(e []float64, m, total int, redistribute bool) ([]int, bool) {
	b := make([]int, len(e))
	whole := make([]bool, len(e))
	ok := true
	for changed := true; changed; {
		changed, ok = false, true
		rem, sum := float64(total), 0.0
		for l := range e {
			if whole[l] {
				rem -= float64(m)
			} else {
				sum += e[l]
			}
		}
		for l := range e {
			if whole[l] {
				b[l] = m
				continue
			}
			x := e[l] / sum * rem
			if f := x - math.Floor(x); f < 1e-6 || f > 1-1e-6 {
				ok = false
			}
			b[l] = int(math.Floor(x))
			if redistribute && b[l] >= m {
				whole[l], changed = true, true
			}
		}
	}
	return b, ok
}

// checkPrefix compares the prefix positions (< m) each head of layer l kept
// with the oracle's.
func checkPrefix(t *testing.T, l int, kept [][]int32, want [][]int, m int) {
	t.Helper()
	for kv := range want {
		var got []int
		for _, at := range kept[kv] {
			if int(at) < m {
				got = append(got, int(at))
			}
		}
		if !slices.Equal(got, want[kv]) {
			t.Errorf("layer %d head %d keeps prefix %v, oracle %v", l, kv, got, want[kv])
		}
	}
}

// checkClearCases fails a test whose oracle comparisons were mostly skipped
// for near-ties, which would make it pass without checking anything.
func checkClearCases(t *testing.T, compared, skipped int) {
	t.Helper()
	t.Logf("kept sets compared with the oracle in %d layers, skipped for near-ties in %d", compared, skipped)
	if compared < 3*skipped {
		t.Errorf("too few clear cases: %d compared, %d skipped", compared, skipped)
	}
}

// scoresOf scores pending layer l of c as Compress would.
func scoresOf(t testing.TB, c *KVCache, l int) []float32 {
	t.Helper()
	ls, err := c.scoreLayer(&scratch{c: c}, l)
	if err != nil {
		t.Fatal(err)
	}
	return ls.s
}

// alphaFor is the floor fraction the tests use with a floor mode: 0 for
// the paper's mode, AdaKV's default otherwise.
func alphaFor(mode FloorMode) float64 {
	if mode == FloorNone {
		return 0
	}
	return DefaultAdaAlpha
}

// oracleCaps is the head capacity of the floor modes written out in
// float64: cap = round_half_even((1−α)·won + F), F = ⌊α·b⌋ (AdaKV) or
// ⌊α·B⌋ (reference), at most the prefix m.
func oracleCaps(won []int, b, m, B int, pol Policy) []int {
	caps := make([]int, len(won))
	for kv, c := range won {
		x := float64(c)
		switch pol.floor {
		case FloorAdaKV:
			x = math.RoundToEven((1-pol.alpha)*x + math.Floor(pol.alpha*float64(b)))
		case FloorReference:
			x = math.RoundToEven((1-pol.alpha)*x + math.Floor(pol.alpha*float64(B)))
		}
		caps[kv] = min(int(x), m)
	}
	return caps
}

// appendLayerRange appends tokens lo..hi−1 of layer l in one chunk, without
// queries.
func (p prompt) appendLayerRange(t testing.TB, c *KVCache, l, lo, hi int) {
	kvrow := p.cfg.KVHeads * p.cfg.HeadDim
	if err := c.Append(l, nil, p.k[l][lo*kvrow:hi*kvrow], p.v[l][lo*kvrow:hi*kvrow]); err != nil {
		t.Fatal(err)
	}
}

// allocsIn returns every allocation runs calls of f make, after one
// warm-up call. testing.AllocsPerRun divides in integers, so it reports 0
// for a few allocations among many runs; steady-state zero means none.
func allocsIn(runs int, f func()) uint64 {
	// One P, as AllocsPerRun does, so other goroutines do not allocate
	// during the count.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	f()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}

// fewestAllocs is allocsIn repeated three times, the fewest, for an f that
// may run 3·runs + 3 times. allocsIn counts the whole process's
// allocations, and even with one P another goroutine (the test
// framework's, or one an earlier test left running) may run when f is
// preempted and allocate: under qemu, where calls are slow, the full arm64
// suite saw one such allocation in a round of 100 Attend calls now and
// then. Only what f allocates in every round is f's own.
func fewestAllocs(runs int, f func()) uint64 {
	fewest := allocsIn(runs, f)
	for range 2 {
		fewest = min(fewest, allocsIn(runs, f))
	}
	return fewest
}
