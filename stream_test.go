package lava

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// streamOracle scores the candidates of every head of layer l of c as
// spec §11 defines it, in float64, from what the cache holds (View) and the
// prompt's queries of the window: causal attention by position over held
// entries, pooling by position, the value scale over candidates. It covers
// LAVa (and its ablations) and the SnapKV family.
func streamOracle(c *KVCache, p prompt, l int) [][]float64 {
	cfg := c.cfg
	pol := cfg.Policy
	d, g := cfg.HeadDim, c.group
	w := pol.windowOf(&cfg)
	P := c.Tokens(l)
	r := int32(pol.kernel / 2)
	s := make([][]float64, cfg.KVHeads)
	for kv := range s {
		v, _ := c.View(l, kv)
		m, _ := slices.BinarySearch(v.Positions, int32(P-w))
		lava := family(pol) == "lava"
		group := make([]float64, m)
		for qh := kv * g; qh < (kv+1)*g; qh++ {
			abar := make([]float64, m)
			for j := range w {
				pos := P - w + j
				q := p.q[l][(pos*cfg.Heads+qh)*d:][:d]
				var z []float64
				zmax := math.Inf(-1)
				for e := 0; e < v.Len() && int(v.Positions[e]) <= pos; e++ {
					var dot float64
					for t := range d {
						k, _ := viewAt(v, e*d+t)
						dot += float64(q[t]) * float64(k)
					}
					z = append(z, dot/math.Sqrt(float64(d)))
					zmax = max(zmax, z[e])
				}
				var sum float64
				for e := range z {
					z[e] = math.Exp(z[e] - zmax)
					sum += z[e]
				}
				for e := range m {
					abar[e] += z[e] / sum / float64(w)
				}
			}
			if lava {
				for e, x := range poolByPosition(pol, v.Positions[:m], r, abar) {
					group[e] = max(group[e], x)
				}
			} else {
				for e, x := range abar {
					group[e] += x / float64(g)
				}
			}
		}
		if !lava {
			s[kv] = poolByPosition(pol, v.Positions[:m], r, group)
			continue
		}
		var vbar float64
		for e := range m {
			var n float64
			for t := range d {
				_, val := viewAt(v, e*d+t)
				n += math.Abs(float64(val))
			}
			vbar = max(vbar, n)
		}
		for e := range group {
			group[e] *= vbar
		}
		s[kv] = group
	}
	return s
}

// poolByPosition pools x over the entries within r positions of each.
func poolByPosition(pol Policy, pos []int32, r int32, x []float64) []float64 {
	out := make([]float64, len(x))
	for i := range x {
		for j := range x {
			if pos[j] < pos[i]-r || pos[j] > pos[i]+r {
				continue
			}
			if pol.pool == PoolMax {
				out[i] = max(out[i], x[j])
			} else {
				out[i] += x[j] / float64(pol.kernel)
			}
		}
	}
	return out
}

// A chunked prefill: after the first chunks have been compressed (heads
// hold gapped, unequal sets), the next chunk's scores equal the §11 oracle
// over what is held, and so does the entropy over unequal head lengths.
func TestStreamScoresMatchOracle(t *testing.T) {
	for _, pol := range []Policy{LAVa(), LAVa().WithPooling(PoolAvg, 5), SnapKV(), AdaSnapKV(), LAVaUniformHeads()} {
		for _, el := range allElements {
			cfg := Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, Window: 6, Budget: 20, Policy: pol, KeyElement: el, ValueElement: el}
			const n, chunk = 130, 40
			p := randomPrompt(rand.New(rand.NewPCG(11, uint64(el))), cfg, n)
			p.storedAs(cfg)
			c := newCache(t, cfg)
			for lo := 0; lo < n; lo += chunk {
				hi := min(n, lo+chunk)
				for l := range cfg.Layers {
					p.appendRange(t, c, l, lo, hi, true)
				}
				if hi == n {
					break // score the last chunk below, before Compress
				}
				if _, err := c.Compress(); err != nil {
					t.Fatal(err)
				}
			}
			for l := range cfg.Layers {
				if c.Len(l, 0) == c.Len(l, 1) && pol.heads == JointHeads {
					t.Logf("%s layer %d: heads hold equal lengths", pol.Name(), l)
				}
				got := scoresOf(t, c, l)
				want := streamOracle(c, p, l)
				top, k := 0.0, 0
				for _, h := range want {
					top = max(top, slices.Max(h))
				}
				tol := 8 * float64(cfg.HeadDim*8+n) * 0x1p-24 * top
				for kv, h := range want {
					for i, x := range h {
						if g := float64(got[k]); math.Abs(g-x) > tol {
							t.Fatalf("%s %v layer %d head %d candidate %d: score %g, oracle %g (tolerance %g)", pol.Name(), el, l, kv, i, g, x, tol)
						}
						k++
					}
				}
				if k != len(got) {
					t.Fatalf("%s layer %d: %d scores, oracle %d candidates", pol.Name(), l, len(got), k)
				}
				ls, _ := c.scoreLayer(&scratch{c: c}, l)
				if e := oracleEntropy(want); math.Abs(ls.entropy-e) > 1e-5 {
					t.Errorf("%s layer %d: entropy %v, oracle %v", pol.Name(), l, ls.entropy, e)
				}
			}
		}
	}
}

// prefill appends tokens 0..n−1 with their queries to every layer of c, in
// one chunk, and compresses.
func (p prompt) prefill(t testing.TB, c *KVCache, n int) {
	t.Helper()
	for l := range p.cfg.Layers {
		p.appendRange(t, c, l, 0, n, true)
	}
	if _, err := c.Compress(); err != nil {
		t.Fatal(err)
	}
}

// appendRange appends tokens lo..hi−1 of layer l in one chunk, with their
// queries or without.
func (p prompt) appendRange(t testing.TB, c *KVCache, l, lo, hi int, withQ bool) {
	t.Helper()
	qrow, kvrow := p.cfg.Heads*p.cfg.HeadDim, p.cfg.KVHeads*p.cfg.HeadDim
	var q []float32
	if withQ {
		q = p.q[l][lo*qrow : hi*qrow]
	}
	if err := c.Append(l, q, p.k[l][lo*kvrow:hi*kvrow], p.v[l][lo*kvrow:hi*kvrow]); err != nil {
		t.Fatal(err)
	}
}

// checkStreamInvariants checks spec §11's invariants after a Compress:
// positions strictly increasing and never renumbered (each row is the one
// appended at its position), the window held in every head, and every layer
// scored by this Compress at most its budget plus the window per head on
// average (in the paper's floor mode, where no floor adds entries).
func checkStreamInvariants(t *testing.T, c *KVCache, r Report, p prompt) {
	t.Helper()
	checkStreamInvariantsOf(t, c, r, p, true)
}

// checkStreamInvariantsOf is checkStreamInvariants, checking that the window
// is held only if windowHeld: after a Truncate, tokens that decode eviction
// removed may have become the window.
func checkStreamInvariantsOf(t *testing.T, c *KVCache, r Report, p prompt, windowHeld bool) {
	t.Helper()
	cfg := c.cfg
	w := cfg.Policy.windowOf(&cfg)
	for l := range cfg.Layers {
		P := c.Tokens(l)
		held := 0
		for kv := range cfg.KVHeads {
			v, _ := c.View(l, kv)
			pos := v.Positions
			held += len(pos)
			for i := 1; i < len(pos); i++ {
				if pos[i] <= pos[i-1] {
					t.Fatalf("layer %d head %d: positions %v not strictly increasing", l, kv, pos)
				}
			}
			if windowHeld && cfg.Policy.decode != decodeLeastAttendedLayer { // TOVA may evict any entry
				for j := max(0, P-w); j < P; j++ {
					if _, ok := slices.BinarySearch(pos, int32(j)); !ok {
						t.Fatalf("layer %d head %d: window position %d not held", l, kv, j)
					}
				}
			}
			for e, at := range pos {
				src := (int(at)*cfg.KVHeads + kv) * cfg.HeadDim
				for i := range cfg.HeadDim {
					gk, gv := viewAt(v, e*cfg.HeadDim+i)
					if gk != p.k[l][src+i] || gv != p.v[l][src+i] {
						t.Fatalf("layer %d head %d position %d: row differs from the appended one", l, kv, at)
					}
				}
			}
		}
		lr := r.Layers[l]
		if lr.Scored && cfg.Policy.floor == FloorNone && held > cfg.KVHeads*(lr.Budget+w) {
			t.Errorf("layer %d: %d entries held after Compress, want ≤ KVHeads·(b_l + w) = %d", l, held, cfg.KVHeads*(lr.Budget+w))
		}
	}
}

// Every policy through a chunked prefill, a second turn and decoding: the
// invariants hold after every Compress, Compress with nothing new does
// nothing, and positions keep counting.
func TestStreamEveryPolicy(t *testing.T) {
	for _, pol := range allPolicies {
		for _, chunk := range []int{16, 50, 400} {
			t.Run(fmt.Sprintf("%s/chunk=%d", pol.Name(), chunk), func(t *testing.T) {
				cfg := Config{Layers: 3, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 4, Budget: 24, Policy: pol}
				const n, turn = 200, 60
				p := randomPrompt(rand.New(rand.NewPCG(13, uint64(chunk))), cfg, n+turn)
				if cfg.KeyElement == Float16 {
					t.Fatal("float32 only")
				}
				c := newCache(t, cfg)
				compress := func() Report {
					t.Helper()
					r, err := c.Compress()
					if err != nil {
						t.Fatal(err)
					}
					checkStreamInvariants(t, c, r, p)
					return r
				}
				for lo := 0; lo < n; lo += chunk {
					hi := min(n, lo+chunk)
					for l := range cfg.Layers {
						p.appendRange(t, c, l, lo, hi, true)
					}
					compress()
				}
				if r := compress(); r.Evicted || r.BytesAfter != r.BytesBefore {
					t.Errorf("a Compress with nothing new evicted: %+v", r)
				}
				// A second turn, appended as one chunk, then compressed.
				for l := range cfg.Layers {
					p.appendRange(t, c, l, n, n+turn, true)
				}
				if r := compress(); !r.Evicted && pol.decode != decodeOldest {
					t.Errorf("the second turn was not compressed") // StreamingLLM rolled it at Append
				}
				if held := c.heldPerHead(); held > float64(cfg.Budget)+1 && pol.floor == FloorNone {
					t.Errorf("after the second turn the cache holds %.1f entries per head, want ≤ Budget %d", held, cfg.Budget)
				}
				for l := range cfg.Layers {
					if c.Tokens(l) != n+turn {
						t.Fatalf("layer %d: Tokens = %d, want %d", l, c.Tokens(l), n+turn)
					}
				}
			})
		}
	}
}

// A chunked prefill whose chunk is at least the prompt is one-shot, and
// Compress twice equals once.
func TestStreamChunkOfWholePromptIsOneShot(t *testing.T) {
	for _, pol := range allPolicies {
		cfg := Config{Layers: 3, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 4, Budget: 24, Policy: pol}
		const n = 150
		p := randomPrompt(rand.New(rand.NewPCG(17, 1)), cfg, n)
		once := newCache(t, cfg)
		p.fill(t, once, n, false, false)
		twice := newCache(t, cfg)
		for l := range cfg.Layers {
			p.appendRange(t, twice, l, 0, n, true)
		}
		for range 2 {
			if _, err := twice.Compress(); err != nil {
				t.Fatal(err)
			}
		}
		if a, b := keptPositions(once), keptPositions(twice); !slices.EqualFunc(a, b, func(x, y [][]int32) bool { return slices.EqualFunc(x, y, slices.Equal) }) {
			t.Errorf("%s: one chunk compressed twice keeps %v, one-shot %v", pol.Name(), b, a)
		}
	}
}

// Queries given to Attend instead of Append serve scoring the same way.
func TestStreamQueriesFromAttend(t *testing.T) {
	for _, pol := range []Policy{LAVa(), H2O(), SnapKV()} {
		cfg := Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 4, Budget: 16, Policy: pol}
		const n, chunk = 120, 30
		p := randomPrompt(rand.New(rand.NewPCG(19, 1)), cfg, n)
		viaAppend, viaAttend := newCache(t, cfg), newCache(t, cfg)
		qrow := cfg.Heads * cfg.HeadDim
		out := make([]float32, chunk*qrow)
		for lo := 0; lo < n; lo += chunk {
			for l := range cfg.Layers {
				p.appendRange(t, viaAppend, l, lo, lo+chunk, true)
				p.appendRange(t, viaAttend, l, lo, lo+chunk, false)
				if err := viaAttend.Attend(l, p.q[l][lo*qrow:(lo+chunk)*qrow], out); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range []*KVCache{viaAppend, viaAttend} {
				if _, err := c.Compress(); err != nil {
					t.Fatalf("%s: %v", pol.Name(), err)
				}
			}
		}
		if a, b := keptPositions(viaAppend), keptPositions(viaAttend); !slices.EqualFunc(a, b, func(x, y [][]int32) bool { return slices.EqualFunc(x, y, slices.Equal) }) {
			t.Errorf("%s: queries via Attend keep %v, via Append %v", pol.Name(), b, a)
		}
	}
}

// Decoding with slack S holds the cache within Budget + S per head and
// compresses it back to Budget, with no allocation in a step that is not
// due to compress.
func TestDecodeSlack(t *testing.T) {
	for _, pol := range []Policy{LAVa(), SnapKV(), H2O(), VATP()} {
		const S = 8
		cfg := Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 4, Budget: 16, DecodeSlack: S, DecodeReserve: 2 * S, Policy: pol}
		const n, steps = 60, 100
		p := randomPrompt(rand.New(rand.NewPCG(23, 1)), cfg, n+steps+3*S)
		c := newCache(t, cfg)
		p.prefill(t, c, n)
		qrow := cfg.Heads * cfg.HeadDim
		out := make([]float32, qrow)
		compressions, peak := 0, 0.0
		next := n
		step := func() {
			before := c.heldPerHead()
			for l := range cfg.Layers {
				p.appendRange(t, c, l, next, next+1, false)
				if err := c.Attend(l, p.q[l][next*qrow:(next+1)*qrow], out); err != nil {
					t.Fatal(err)
				}
			}
			next++
			after := c.heldPerHead()
			peak = max(peak, after)
			if after < before {
				compressions++
				if after > float64(cfg.Budget)+1 {
					t.Errorf("%s step %d: compressed to %.1f entries per head, want Budget %d", pol.Name(), next, after, cfg.Budget)
				}
			}
		}
		for range steps {
			step()
		}
		if peak > float64(cfg.Budget+S+1) || compressions < steps/(S+1)-1 {
			t.Errorf("%s: peak %.1f entries per head (Budget %d + slack %d), %d compressions in %d steps", pol.Name(), peak, cfg.Budget, S, compressions, steps)
		}
		if family(pol) == "h2o" {
			continue // H2O scores every decode query as it comes
		}
		// Right after a compression there are S steps of room: no
		// allocation in them (DecodeReserve covers the rows).
		for c.heldPerHead() > float64(cfg.Budget)+1 {
			step()
		}
		if allocs := allocsIn(S/2-1, step); allocs != 0 {
			t.Errorf("%s: %d allocations in %d decode steps with slack left", pol.Name(), allocs, S/2-1)
		}
	}
}

// FuzzStream drives random sequences of Append (chunks and single tokens,
// with and without queries), Attend (one or several tokens), Truncate and
// Compress under every policy, and checks that nothing panics and that after every
// successful Compress the invariants hold.
func FuzzStream(f *testing.F) {
	f.Add(uint64(1), []byte{0, 1, 2, 3, 0, 2, 1, 3})
	f.Add(uint64(7), []byte{0x40, 0x13, 0x22, 0x03, 0x81, 0x92, 0xa3, 0x10, 0x01})
	f.Fuzz(func(t *testing.T, seed uint64, ops []byte) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		pol := allPolicies[seed%uint64(len(allPolicies))]
		cfg := Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 4, Window: 3, Budget: 10, Policy: pol,
			DecodeSlack: int(seed>>8) % 6}
		// Bits 5–8 of the seed pick the key and value types.
		cfg.KeyElement, cfg.ValueElement = Element(seed>>5&3), Element(seed>>7&3)
		const maxTokens = 400
		p := randomPrompt(rand.New(rand.NewPCG(seed, 1)), cfg, maxTokens)
		p.storedAs(cfg)
		c, err := New(cfg)
		if err != nil {
			t.Skip(err) // e.g. StreamingLLM's sinks above Budget − Window
		}
		qrow := cfg.Heads * cfg.HeadDim
		windowHeld := true // until a Truncate may expose what decode eviction removed
		for _, op := range ops {
			l := int(op>>7) % cfg.Layers
			n := 1 + int(op>>2)&31 // tokens for Append or Attend
			P := c.Tokens(l)
			switch op & 3 {
			case 0, 1: // Append n tokens, with queries when op&1
				if P+n > maxTokens {
					continue
				}
				p.appendRange(t, c, l, P, P+n, op&1 == 1)
			case 2: // Attend the last n tokens
				n = min(n, P)
				if n == 0 {
					continue
				}
				out := make([]float32, n*qrow)
				if err := c.Attend(l, p.q[l][(P-n)*qrow:P*qrow], out); err != nil && !errors.Is(err, ErrInvalid) {
					t.Fatalf("Attend: %v", err)
				}
				for _, x := range out {
					if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
						t.Fatalf("Attend gave %v", x)
					}
				}
			case 3:
				if op&0x40 != 0 { // roll back n tokens
					to := max(0, P-n)
					// Tokens a Compress or decode eviction removed may
					// become the window again.
					for i := range c.layers {
						windowHeld = windowHeld && c.layers[i].scoredAt <= to
					}
					windowHeld = windowHeld && pol.decode == decodeKeep
					if err := c.Truncate(to); err != nil {
						t.Fatal(err)
					}
					continue
				}
				r, err := c.Compress()
				if err != nil {
					if !errors.Is(err, ErrInvalid) {
						t.Fatalf("Compress: %v", err)
					}
					continue
				}
				checkStreamInvariantsOf(t, c, r, p, windowHeld)
			}
		}
	})
}

// H2O's decode step (Append, then Attend with the token's queries, which
// H2O accumulates) allocates nothing once the storage has room.
func TestH2ODecodeZeroAllocs(t *testing.T) {
	cfg := Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 4, Budget: 16, DecodeReserve: 64, Policy: H2O()}
	const n = 80
	p := randomPrompt(rand.New(rand.NewPCG(31, 1)), cfg, n+64)
	c := newCache(t, cfg)
	p.fill(t, c, n, false, false)
	qrow := cfg.Heads * cfg.HeadDim
	out := make([]float32, qrow)
	next := n
	step := func() {
		for l := range cfg.Layers {
			p.appendRange(t, c, l, next, next+1, false)
			if err := c.Attend(l, p.q[l][next*qrow:(next+1)*qrow], out); err != nil {
				t.Fatal(err)
			}
		}
		next++
	}
	if allocs := allocsIn(20, step); allocs != 0 {
		t.Errorf("%d allocations in 20 H2O decode steps", allocs)
	}
}

// The slack compresses only at the end of a step, once every layer has
// received and attended it: never between one layer's Attend and the
// next layer's Append of the same token.
func TestDecodeSlackAtStepEnd(t *testing.T) {
	cfg := Config{Layers: 3, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 4, Budget: 16, DecodeSlack: 2}
	const n = 60
	p := randomPrompt(rand.New(rand.NewPCG(73, 1)), cfg, n+40)
	c := newCache(t, cfg)
	p.prefill(t, c, n)
	qrow := cfg.Heads * cfg.HeadDim
	out := make([]float32, qrow)
	for i := n; i < n+40; i++ {
		for l := range cfg.Layers {
			held := c.heldPerHead()
			p.appendRange(t, c, l, i, i+1, false)
			if err := c.Attend(l, p.q[l][i*qrow:(i+1)*qrow], out); err != nil {
				t.Fatal(err)
			}
			if l < cfg.Layers-1 && c.heldPerHead() < held {
				t.Fatalf("step %d: the cache was compressed after layer %d's Attend, mid-step", i, l)
			}
		}
	}
}
