package lava

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestViewReturnsExactRows(t *testing.T) {
	// Values encode layer·10000 + head·100 + token, so a mis-gathered row
	// shows in the number itself.
	cfg := Config{Layers: 3, Heads: 4, KVHeads: 2, HeadDim: 4, Window: 4, Budget: 12}
	for _, el := range allElements {
		cfg.KeyElement, cfg.ValueElement = el, el
		const n = 90
		p := randomPrompt(rand.New(rand.NewPCG(1, 2)), cfg, n)
		for l := range p.v {
			for i := range p.v[l] {
				tok, kv := i/(cfg.KVHeads*cfg.HeadDim), (i/cfg.HeadDim)%cfg.KVHeads
				p.v[l][i] = float32(l*10000 + kv*100 + tok)
			}
		}
		c := newCache(t, cfg)
		p.fill(t, c, 17, false, true)
		for l := range cfg.Layers {
			for kv := range cfg.KVHeads {
				v, _ := c.View(l, kv)
				if v.Len() >= n || v.Len() < cfg.Window {
					t.Fatalf("%v layer %d head %d: %d entries kept of %d", el, l, kv, v.Len(), n)
				}
				for e, at := range v.Positions {
					for dim := range cfg.HeadDim {
						_, got := viewAt(v, e*cfg.HeadDim+dim)
						row := slices.Repeat([]float32{float32(l*10000 + kv*100 + int(at))}, cfg.HeadDim)
						roundTo(el, row, cfg.HeadDim) // what the storage holds of the row
						want := row[dim]
						if got != want {
							t.Fatalf("%v layer %d head %d entry %d (position %d): value %v, want %v", el, l, kv, e, at, got, want)
						}
					}
				}
			}
		}
	}
}

// oracleAttend is decode attention in float64 over a view's rows.
func oracleAttend(v HeadView, q []float32) []float64 {
	d := len(q)
	n := v.Len()
	z := make([]float64, n)
	zmax := math.Inf(-1)
	for i := range n {
		for t := range d {
			k, _ := viewAt(v, i*d+t)
			z[i] += float64(q[t]) * float64(k)
		}
		z[i] /= math.Sqrt(float64(d))
		zmax = max(zmax, z[i])
	}
	out := make([]float64, d)
	var sum float64
	for i := range n {
		z[i] = math.Exp(z[i] - zmax)
		sum += z[i]
	}
	for i := range n {
		for t := range d {
			_, val := viewAt(v, i*d+t)
			out[t] += z[i] / sum * float64(val)
		}
	}
	return out
}

func TestDecodeAndAttend(t *testing.T) {
	for si := range shapes {
		for _, el := range allElements {
			cfg, n := shapeConfig(si)
			cfg.KeyElement, cfg.ValueElement = el, el
			rng := rand.New(rand.NewPCG(uint64(si), 3))
			p := randomPrompt(rng, cfg, n)
			c := newCache(t, cfg)
			p.fill(t, c, n, true, false)
			d := cfg.HeadDim
			q := make([]float32, cfg.Heads*d)
			k := make([]float32, cfg.KVHeads*d)
			out := make([]float32, len(q))
			for step := range 3 {
				for l := range cfg.Layers {
					before := make([]int, cfg.KVHeads)
					for kv := range before {
						before[kv] = c.Len(l, kv)
					}
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
					for h := range cfg.Heads {
						kv := h / (cfg.Heads / cfg.KVHeads)
						v, _ := c.View(l, kv)
						if v.Len() != before[kv]+1 || v.Positions[v.Len()-1] != int32(n+step) {
							t.Fatalf("decode step %d layer %d head %d: %d entries, last position %d; want %d, %d", step, l, kv, v.Len(), v.Positions[v.Len()-1], before[kv]+1, n+step)
						}
						want := oracleAttend(v, q[h*d:(h+1)*d])
						// The output is a convex combination of value rows:
						// bound the error by n·ε₃₂ of the largest value
						// magnitude, plus the logits' d-term dot error.
						var vmax float64
						for i := range v.Len() * d {
							_, val := viewAt(v, i)
							vmax = max(vmax, math.Abs(float64(val)))
						}
						tol := 8 * float64(v.Len()+4*d) * 0x1p-24 * vmax
						for t2, w := range want {
							if g := float64(out[h*d+t2]); math.Abs(g-w) > tol {
								t.Fatalf("shape %d %v step %d layer %d query head %d dim %d: %v, oracle %v (tolerance %g)", si, el, step, l, h, t2, g, w, tol)
							}
						}
					}
				}
			}
			if got := c.Tokens(0); got != n+3 {
				t.Errorf("Tokens(0) = %d, want %d", got, n+3)
			}
		}
	}
}

// Query head q reads KV head q/g (spec invariant 5): with each KV head's
// values a distinct constant, every query head's output is its group's.
func TestAttendGroupMapping(t *testing.T) {
	cfg := Config{Layers: 1, Heads: 8, KVHeads: 2, HeadDim: 2, Window: 1, Budget: 4}
	c := newCache(t, cfg)
	k := []float32{1, 0, 0, 1}
	v := []float32{7, 7, -3, -3}
	for range 3 {
		if err := c.Append(0, nil, k, v); err != nil {
			t.Fatal(err)
		}
	}
	q, out := make([]float32, 16), make([]float32, 16)
	for i := range q {
		q[i] = float32(i)
	}
	if err := c.Attend(0, q, out); err != nil {
		t.Fatal(err)
	}
	for h := range 8 {
		want := []float32{7, -3}[h/4]
		if out[2*h] != want || out[2*h+1] != want {
			t.Errorf("query head %d: out %v, want KV head %d's value %v", h, out[2*h:2*h+2], h/4, want)
		}
	}
}

func TestScoresUseOnlyTheGroup(t *testing.T) {
	// Changing the queries of one group must not change another KV head's
	// scores (spec invariant 5 on the scoring side).
	cfg, n := shapeConfig(2)
	p := randomPrompt(rand.New(rand.NewPCG(5, 5)), cfg, n)
	scores := func(p prompt) []float32 {
		c := newCache(t, cfg)
		p.appendLayer(t, c, 0, n, false)
		return scoresOf(t, c, 0)
	}
	a := scores(p)
	g, d := cfg.Heads/cfg.KVHeads, cfg.HeadDim
	for tok := range n {
		for h := 0; h < g; h++ { // group of KV head 0
			for i := range d {
				p.q[0][(tok*cfg.Heads+h)*d+i] *= -1.5
			}
		}
	}
	b := scores(p)
	m := n - p.cfg.Window
	if slices.Equal(a[:m], b[:m]) {
		t.Errorf("KV head 0's scores did not change with its group's queries")
	}
	if !slices.Equal(a[m:], b[m:]) {
		t.Errorf("other KV heads' scores changed with KV head 0's group's queries")
	}
}

func TestMemoryIsFreed(t *testing.T) {
	cfg := Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 4, Budget: 16, DecodeReserve: 8}
	const n = 400
	p := randomPrompt(rand.New(rand.NewPCG(9, 9)), cfg, n)
	c := newCache(t, cfg)
	r := p.fill(t, c, n, false, false)
	if want := int64(cfg.Layers*cfg.KVHeads*n) * c.EntryBytes(); r.BytesBefore != want {
		t.Errorf("BytesBefore = %d, want %d", r.BytesBefore, want)
	}
	var kept int64
	for l := range cfg.Layers {
		// What streaming keeps beside the rows: the ranking of the kept
		// candidates (for a later re-trim) and the ring of 2·Window queries.
		L := &c.layers[l]
		if len(L.winners) > cfg.KVHeads*L.budget || cap(L.winners) > 2*cfg.KVHeads*L.budget || len(L.queries) != 2*cfg.Window*cfg.Heads*cfg.HeadDim {
			t.Errorf("layer %d holds %d ranked entries (capacity %d) for a budget of %d per head, and %d query values", l, len(L.winners), cap(L.winners), L.budget, len(L.queries))
		}
		for kv := range cfg.KVHeads {
			h := &c.layers[l].heads[kv]
			kept += int64(h.len())
			if h.k.capRows(cfg.HeadDim) != h.len()+cfg.DecodeReserve || cap(h.pos) != h.len()+cfg.DecodeReserve {
				t.Errorf("layer %d head %d: capacity %d rows for %d kept + %d reserve", l, kv, cap(h.pos), h.len(), cfg.DecodeReserve)
			}
		}
	}
	if r.BytesAfter != kept*c.EntryBytes() || r.BytesAfter != c.Bytes() {
		t.Errorf("BytesAfter = %d, Bytes() = %d, want %d", r.BytesAfter, c.Bytes(), kept*c.EntryBytes())
	}
	if want := int64(cfg.Layers*cfg.KVHeads*cfg.Budget) * c.EntryBytes(); r.BytesAfter > want {
		t.Errorf("BytesAfter = %d exceeds the budget's %d", r.BytesAfter, want)
	}
}

func TestZeroAllocs(t *testing.T) {
	splitAlways(t) // with Workers 2, Attend shares the KV heads with the cache's pool
	cfg := Config{Layers: 2, Heads: 8, KVHeads: 2, HeadDim: 16, Window: 8, Budget: 32, DecodeReserve: 1000}
	for _, run := range []struct {
		el      Element
		workers int
	}{{Float32, 1}, {Float16, 1}, {Q8_0, 1}, {Q4_0, 1}, {Float32, 2}, {Q8_0, 2}} {
		el := run.el
		cfg.KeyElement, cfg.ValueElement, cfg.Workers = el, el, run.workers
		p := randomPrompt(rand.New(rand.NewPCG(1, 1)), cfg, 300)
		c := newCache(t, cfg)
		p.fill(t, c, 300, false, false)
		q := p.q[0][:cfg.Heads*cfg.HeadDim]
		k := p.k[0][:cfg.KVHeads*cfg.HeadDim]
		out := make([]float32, len(q))
		if err := c.Attend(0, q, out); err != nil { // sizes the scratch
			t.Fatal(err)
		}
		for name, f := range map[string]func(){
			"Append": func() { _ = c.Append(1, nil, k, k) },
			"View":   func() { _, _ = c.View(1, 1) },
			"Attend": func() { _ = c.Attend(0, q, out) },
		} {
			if a := fewestAllocs(100, f); a != 0 {
				t.Errorf("%v, Workers %d, %s: %d allocations in 100 calls, want 0", el, run.workers, name, a)
			}
		}
	}
}

func TestCloneIsIndependent(t *testing.T) {
	cfg, n := shapeConfig(2)
	p := randomPrompt(rand.New(rand.NewPCG(4, 4)), cfg, n)
	src := newCache(t, cfg)
	for l := range cfg.Layers {
		p.appendLayer(t, src, l, n, false)
	}
	before := keptPositions(src)
	clone := src.Clone()
	if _, err := clone.Compress(); err != nil {
		t.Fatal(err)
	}
	k := p.k[0][:cfg.KVHeads*cfg.HeadDim]
	if err := clone.Append(0, nil, k, k); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(keptPositions(src), before) || src.Tokens(0) != n {
		t.Fatal("compressing and appending to a clone changed its source")
	}
	// The source still compresses exactly as the clone did.
	if _, err := src.Compress(); err != nil {
		t.Fatal(err)
	}
	a, b := keptPositions(src), keptPositions(clone)
	for l := range a {
		for kv := range a[l] {
			if !slices.Equal(a[l][kv], b[l][kv][:len(a[l][kv])]) {
				t.Fatalf("layer %d head %d: source keeps %v, clone %v", l, kv, a[l][kv], b[l][kv])
			}
		}
	}
	// Writing the clone's storage leaves the source's alone.
	vs, _ := src.View(0, 0)
	vc, _ := clone.View(0, 0)
	was := vs.Values[0]
	vc.Values[0] = was + 1
	if vs.Values[0] != was {
		t.Fatal("a clone shares value storage with its source")
	}
}

// huge is 2^bits, or the largest int where int is narrower (32-bit
// platforms), for sizes that overflow products.
func huge(bits uint) int { return int(min(uint64(1)<<bits, uint64(math.MaxInt))) }

func TestConfigErrors(t *testing.T) {
	ok := Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Budget: 64}
	for _, tc := range []struct {
		field string
		set   func(*Config)
	}{
		{"Layers", func(c *Config) { c.Layers = 0 }},
		{"Heads", func(c *Config) { c.Heads = 0 }},
		{"KVHeads", func(c *Config) { c.KVHeads = 0 }},
		{"not a multiple", func(c *Config) { c.Heads = 6; c.KVHeads = 4 }},
		{"HeadDim", func(c *Config) { c.HeadDim = -1 }},
		{"Window", func(c *Config) { c.Window = -2 }},
		{"Budget", func(c *Config) { c.Budget = 32 }},
		{"Budget", func(c *Config) { c.Budget = 0 }},
		{"pooling", func(c *Config) { c.Policy = LAVa().WithPooling(9, 7) }},
		{"kernel", func(c *Config) { c.Policy = LAVa().WithPooling(PoolMax, 4) }},
		{"floor mode", func(c *Config) { c.Policy = LAVa().WithFloor(7, 0.2) }},
		{"α", func(c *Config) { c.Policy = LAVa().WithFloor(FloorAdaKV, 1) }},
		{"α", func(c *Config) { c.Policy = AdaSnapKV().WithFloor(FloorAdaKV, math.NaN()) }},
		{"α", func(c *Config) { c.Policy = LAVa().WithFloor(FloorNone, 0.3) }},
		{"Layers", func(c *Config) { c.Layers = huge(31) }},
		{"KVHeads", func(c *Config) { c.Heads, c.KVHeads = huge(40), huge(40) }},
		{"Heads", func(c *Config) { c.Heads = huge(40) }},
		{"HeadDim", func(c *Config) { c.HeadDim = huge(62) }},
		{"Window", func(c *Config) { c.Window = 1 << 28 }},
		{"DecodeReserve", func(c *Config) { c.DecodeReserve = math.MaxInt / 2 }},
		{"KeyElement", func(c *Config) { c.KeyElement = 9 }},
		{"ValueElement", func(c *Config) { c.ValueElement = -1 }},
		{"DecodeReserve", func(c *Config) { c.DecodeReserve = -1 }},
	} {
		cfg := ok
		tc.set(&cfg)
		_, err := New(cfg)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: New = %v, want an ErrInvalid naming %q", tc.field, err, tc.field)
		}
	}
	if _, err := New(ok); err != nil {
		t.Fatal(err)
	}
}

// snapshot is everything observable about a cache, for checking that a
// failed call changed nothing.
func snapshot(c *KVCache) any {
	// Bits, not floats: DeepEqual finds NaN unequal to itself.
	bits := func(x []float32) []uint32 {
		b := make([]uint32, len(x))
		for i, v := range x {
			b[i] = math.Float32bits(v)
		}
		return b
	}
	views := []any{}
	for l := range c.cfg.Layers {
		for kv := range c.cfg.KVHeads {
			v, _ := c.View(l, kv)
			views = append(views, bits(v.Keys), bits(v.Values), slices.Clone(v.Keys16), slices.Clone(v.Values16), slices.Clone(v.Positions))
		}
	}
	tokens := []int{}
	for l := range c.cfg.Layers {
		tokens = append(tokens, c.Tokens(l))
	}
	return []any{views, tokens, c.Bytes()}
}

func TestBadInputLeavesCacheUnchanged(t *testing.T) {
	cfg := Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 2, Window: 2, Budget: 4}
	qr, kr := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	fresh := func() *KVCache {
		c := newCache(t, cfg)
		p := randomPrompt(rand.New(rand.NewPCG(2, 2)), cfg, 10)
		p.appendLayer(t, c, 0, 10, false)
		return c
	}
	nan := float32(math.NaN())
	withAt := func(n int, i int, x float32) []float32 { s := make([]float32, n); s[i] = x; return s }
	compress := func(c *KVCache) error { _, err := c.Compress(); return err }
	for _, tc := range []struct {
		name, want string
		call, prep func(c *KVCache) error // prep runs, and must succeed, before call
	}{
		{"layer", "layer = 2", func(c *KVCache) error { return c.Append(2, nil, make([]float32, kr), make([]float32, kr)) }, nil},
		{"negative layer", "layer = -1", func(c *KVCache) error { return c.Append(-1, nil, make([]float32, kr), make([]float32, kr)) }, nil},
		{"short k", "len(k) = 3", func(c *KVCache) error { return c.Append(0, nil, make([]float32, 3), make([]float32, 3)) }, nil},
		{"empty k", "len(k) = 0", func(c *KVCache) error { return c.Append(0, nil, nil, nil) }, nil},
		{"v length", "len(v) = 8", func(c *KVCache) error { return c.Append(0, nil, make([]float32, kr), make([]float32, 2*kr)) }, nil},
		{"q length", "len(q) = 7", func(c *KVCache) error {
			return c.Append(0, make([]float32, 7), make([]float32, kr), make([]float32, kr))
		}, nil},
		{"attend layer", "layer = 5", func(c *KVCache) error { return c.Attend(5, make([]float32, qr), make([]float32, qr)) }, nil},
		{"attend q", "len(q) = 1", func(c *KVCache) error { return c.Attend(0, make([]float32, 1), make([]float32, qr)) }, nil},
		{"attend out", "len(out) = 1", func(c *KVCache) error { return c.Attend(0, make([]float32, qr), make([]float32, 1)) }, nil},
		{"reserve layer", "layer = 2", func(c *KVCache) error { return c.Reserve(2, 1) }, nil},
		{"reserve tokens", "tokens = -1", func(c *KVCache) error { return c.Reserve(0, -1) }, nil},
		{"reserve too many", "tokens = 2147483638", func(c *KVCache) error { return c.Reserve(0, math.MaxInt32-9) }, nil},
		{"view layer", "layer = 9", func(c *KVCache) error { _, err := c.View(9, 0); return err }, nil},
		{"view head", "kvHead = 2", func(c *KVCache) error { _, err := c.View(0, 2); return err }, nil},
		{"NaN key", "layer 1, token 1 (position 1), KV head 0: key element 1 is NaN", func(c *KVCache) error {
			return c.Append(1, make([]float32, 10*qr), withAt(10*kr, 5, nan), make([]float32, 10*kr))
		}, nil},
		{"Inf value", "layer 0, token 0 (position 10), KV head 1: value element 1 is -Inf", func(c *KVCache) error {
			return c.Append(0, nil, make([]float32, 10*kr), withAt(10*kr, 3, float32(math.Inf(-1))))
		}, nil},
		{"Inf query", "query", compress, func(c *KVCache) error {
			return c.Append(1, withAt(10*qr, 10*qr-1, float32(math.Inf(1))), make([]float32, 10*kr), make([]float32, 10*kr))
		}},
		{"missing queries", "queries", compress, func(c *KVCache) error {
			return c.Append(1, nil, make([]float32, 10*kr), make([]float32, 10*kr))
		}},
		{"overflowing scores", "not finite", compress, func(c *KVCache) error {
			return c.Append(1, slices.Repeat([]float32{3e19}, 10*qr), slices.Repeat([]float32{3e19}, 10*kr), make([]float32, 10*kr))
		}},
	} {
		c := fresh()
		if tc.prep != nil {
			if err := tc.prep(c); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		before := snapshot(c) // just before the first failing call
		err := tc.call(c)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want an ErrInvalid containing %q", tc.name, err, tc.want)
			continue
		}
		if !reflect.DeepEqual(before, snapshot(c)) {
			t.Errorf("%s: the failed call changed the cache", tc.name)
		}
	}
}

// A copy under another policy and budget compresses exactly as a cache
// filled under that configuration from the start.
func TestCloneWith(t *testing.T) {
	cfg, n := shapeConfig(2)
	p := randomPrompt(rand.New(rand.NewPCG(12, 12)), cfg, n)
	src := newCache(t, cfg)
	for l := range cfg.Layers {
		p.appendLayer(t, src, l, 50, true)
	}
	for _, target := range []Config{
		{Policy: SnapKV(), Budget: 40, Window: 8},
		{Policy: LAVa().WithPooling(PoolAvg, 7), Budget: 16, Window: 5},
		{Policy: TOVA(), Budget: 12, Window: 3},
		{Policy: CAKE(1, 1, 200), Budget: 30, Window: 8},
	} {
		target.Layers, target.Heads, target.KVHeads, target.HeadDim = cfg.Layers, cfg.Heads, cfg.KVHeads, cfg.HeadDim
		cl, err := src.CloneWith(target)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Compress(); err != nil {
			t.Fatal(err)
		}
		direct := newCache(t, target)
		p.fill(t, direct, 50, false, true)
		if !reflect.DeepEqual(keptPositions(cl), keptPositions(direct)) {
			t.Errorf("%s B=%d w=%d: the copy keeps %v, a direct fill %v", target.Policy.Name(), target.Budget, target.Window, keptPositions(cl), keptPositions(direct))
		}
	}
	if src.layers[0].ranked {
		t.Fatal("CloneWith compressed its source")
	}
	bad := cfg
	bad.Window = cfg.Window + 1
	if _, err := src.CloneWith(bad); err == nil || !strings.Contains(err.Error(), "Window") {
		t.Errorf("CloneWith with a larger window: %v, want an error naming Window", err)
	}
	bad = cfg
	bad.HeadDim *= 2
	if _, err := src.CloneWith(bad); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("CloneWith with another shape: %v, want an error naming the shape", err)
	}
	h2o := cfg
	h2o.Policy = H2O()
	cl, err := src.CloneWith(h2o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Compress(); err == nil || !strings.Contains(err.Error(), "H2O") {
		t.Errorf("H2O from a non-H2O cache: Compress = %v, want an error naming H2O", err)
	}
	if _, err := src.Compress(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.CloneWith(cfg); err == nil || !strings.Contains(err.Error(), "compressed") {
		t.Errorf("CloneWith after Compress: %v, want an error", err)
	}
}

// Reserve makes room for a prompt appended in chunks: storing it moves
// nothing and allocates nothing more, the cache holds what one without
// Reserve holds, and Compress frees the room as it frees evicted entries.
func TestReserve(t *testing.T) {
	for _, el := range allElements {
		for _, pol := range []Policy{LAVa(), H2O()} { // H2O keeps a sum per entry too
			cfg := Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 4, Budget: 16, KeyElement: el, ValueElement: el, Policy: pol}
			const n, chunk = 100, 7
			p := randomPrompt(rand.New(rand.NewPCG(61, 1)), cfg, n)
			reserved, plain := newCache(t, cfg), newCache(t, cfg)
			for l := range cfg.Layers {
				if err := reserved.Reserve(l, n); err != nil {
					t.Fatal(err)
				}
			}
			// The bytes of the heads' storage, which AllocatedBytes counts
			// with the queries' ring and scratch.
			storage := func(c *KVCache) int64 {
				var n int64
				for l := range c.layers {
					for _, h := range c.layers[l].heads {
						n += h.k.capBytes() + h.v.capBytes() + int64(4*(cap(h.pos)+cap(h.heavy)))
					}
				}
				return n
			}
			room := storage(reserved)
			if want := int64(cfg.Layers*cfg.KVHeads*n) * reserved.EntryBytes(); room < want {
				t.Fatalf("%v %s: %d bytes of storage after Reserve, want at least the %d of the prompt", el, pol.Name(), room, want)
			}
			if err := reserved.Reserve(0, n); err != nil || storage(reserved) != room {
				t.Errorf("%v %s: Reserve with room already = %v, storage %d → %d bytes", el, pol.Name(), err, room, storage(reserved))
			}
			for l := range cfg.Layers {
				p.appendLayer(t, reserved, l, chunk, false)
				p.appendLayer(t, plain, l, chunk, false)
			}
			if got := storage(reserved); got != room {
				t.Errorf("%v %s: storage of %d bytes after the prompt, %d reserved: it moved", el, pol.Name(), got, room)
			}
			if !reflect.DeepEqual(snapshot(reserved), snapshot(plain)) {
				t.Fatalf("%v %s: the cache with room reserved holds other entries", el, pol.Name())
			}
			rr, _ := reserved.Compress()
			rp, _ := plain.Compress()
			if !reflect.DeepEqual(rr, rp) || !reflect.DeepEqual(snapshot(reserved), snapshot(plain)) {
				t.Fatalf("%v %s: Compress kept other entries with room reserved", el, pol.Name())
			}
			if a, b := reserved.AllocatedBytes(), plain.AllocatedBytes(); a != b {
				t.Errorf("%v %s: AllocatedBytes %d after Compress with room reserved, %d without", el, pol.Name(), a, b)
			}
		}
	}
}
