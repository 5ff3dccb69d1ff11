package lava

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

var allPolicies = []Policy{
	LAVa(), LAVaUniformLayers(), LAVaUniformHeads(),
	SnapKV(), PyramidKV(DefaultPyramidBeta), PyramidKV(5), AdaSnapKV(), AdaPyramidKV(10), AdaSnapKV().WithFloor(FloorAdaKV, 0),
	CAKE(DefaultCAKETau, DefaultCAKETau, DefaultCAKEGamma), CAKE(2, 0.5, 50).WithPooling(PoolMax, 7),
	StreamingLLM(DefaultSinks), H2O(), TOVA(), VATP(), Random(1),
}

// checkPolicy checks what every policy promises on a cache filled from p and
// compressed: spec invariants 1, 7 and 8 (window kept, rows exact, nothing
// twice), and the budgets the policy defines.
func checkPolicy(t *testing.T, c *KVCache, r Report, p prompt) {
	t.Helper()
	cfg := c.cfg
	pol := cfg.Policy
	w := pol.windowOf(&cfg)
	m := p.n - w
	bbar := cfg.Budget - w
	sumB, sumKept := 0, 0
	for l := range cfg.Layers {
		lr := r.Layers[l]
		if !lr.Ranked {
			t.Fatalf("layer %d not ranked with a prompt of %d > Budget %d", l, p.n, cfg.Budget)
		}
		b := min(lr.Budget, m)
		sumB += lr.Budget
		layerKept := 0
		for kv := range cfg.KVHeads {
			v, _ := c.View(l, kv)
			pos := v.Positions
			if len(pos) < w || !slices.IsSorted(pos) || len(slices.Compact(slices.Clone(pos))) != len(pos) {
				t.Fatalf("layer %d head %d: positions %v not strictly increasing with the window", l, kv, pos)
			}
			for j := range w {
				if pos[len(pos)-w+j] != int32(m+j) {
					t.Fatalf("layer %d head %d: window token %d not kept: %v", l, kv, m+j, pos)
				}
			}
			for e, at := range pos {
				src := (int(at)*cfg.KVHeads + kv) * cfg.HeadDim
				for d := range cfg.HeadDim {
					gk, gv := viewAt(v, e*cfg.HeadDim+d)
					if gk != p.k[l][src+d] || gv != p.v[l][src+d] {
						t.Fatalf("layer %d head %d position %d: row differs from the appended one", l, kv, at)
					}
				}
			}
			prefix := len(pos) - w
			layerKept += prefix
			if pol.heads == UniformHeads && prefix != b {
				t.Errorf("layer %d head %d keeps %d prefix entries, want the uniform %d", l, kv, prefix, b)
			}
			if family(pol) == "tova" {
				v0, _ := c.View(l, 0)
				if !slices.Equal(pos, v0.Positions) || len(pos) != cfg.Budget {
					t.Errorf("TOVA layer %d head %d keeps %v, want head 0's %d entries", l, kv, pos, cfg.Budget)
				}
			}
			if family(pol) == "streamingllm" {
				var want []int32
				for i := range p.n {
					if i < pol.sinks || i >= p.n-(cfg.Budget-pol.sinks) {
						want = append(want, int32(i))
					}
				}
				if !slices.Equal(pos, want) {
					t.Errorf("StreamingLLM layer %d head %d keeps %v, want %v", l, kv, pos, want)
				}
			}
		}
		sumKept += layerKept
		if pol.heads == JointHeads && family(pol) == "lava" && pol.floor == FloorNone && layerKept != cfg.KVHeads*b {
			t.Errorf("layer %d: heads keep %d prefix entries, want Hkv·b_l = %d", l, layerKept, cfg.KVHeads*b)
		}
		switch pol.layers {
		case UniformLayers:
			if lr.Budget != bbar {
				t.Errorf("layer %d budget %d, want the uniform %d", l, lr.Budget, bbar)
			}
		case pyramidLayers:
			if want := pyramidOracle(cfg.Budget, w, pol.beta, cfg.Layers, p.n)[l]; lr.Budget != want {
				t.Errorf("layer %d budget %d, want PyramidKV's %d", l, lr.Budget, want)
			}
		}
	}
	total := cfg.Layers * bbar
	switch pol.layers {
	case EntropyLayers:
		if sumB > total || sumB < total-cfg.Layers {
			t.Errorf("Σ b_l = %d, want in [%d, %d]", sumB, total-cfg.Layers, total)
		}
	case cakeLayers:
		if sumB != min(total, cfg.Layers*m) {
			t.Errorf("CAKE: Σ b_l = %d, want exactly %d", sumB, min(total, cfg.Layers*m))
		}
	}
	// The memory promise: only kept entries are stored.
	if c.Bytes() != int64(sumKept+cfg.Layers*cfg.KVHeads*w)*c.EntryBytes() || r.BytesAfter != c.Bytes() {
		t.Errorf("Bytes() = %d, report %d, want %d", c.Bytes(), r.BytesAfter, int64(sumKept+cfg.Layers*cfg.KVHeads*w)*c.EntryBytes())
	}
}

func TestPoliciesAgainstOracles(t *testing.T) {
	compared, skipped := 0, 0
	for si := range shapes {
		for _, pol := range allPolicies {
			cfg, n := shapeConfig(si)
			cfg.Policy = pol
			if family(pol) == "h2o" && n > 1000 {
				continue // the float64 oracle is O(n²); the smaller shapes cover H2O
			}
			if family(pol) == "cake" && cfg.Window < 2 {
				cfg.Window = 2 // the unbiased variance needs two window rows
			}
			if family(pol) == "streamingllm" && cfg.Budget-cfg.Window < pol.sinks {
				cfg.Policy = StreamingLLM(cfg.Budget - cfg.Window)
			}
			name := fmt.Sprintf("shape=%d/%s/%v", si, pol.Name(), pol.layers)
			t.Run(name, func(t *testing.T) {
				p := randomPrompt(rand.New(rand.NewPCG(uint64(si), 21)), cfg, n)
				c := newCache(t, cfg)
				r := p.fill(t, c, 97, false, family(pol) != "h2o")
				checkPolicy(t, c, r, p)
				once := keptPositions(c)
				// The cascade ends where one Compress does.
				cas := newCache(t, cfg)
				p.fill(t, cas, n, true, family(pol) != "h2o")
				if got := keptPositions(cas); !slices.EqualFunc(got, once, func(a, b [][]int32) bool {
					return slices.EqualFunc(a, b, slices.Equal)
				}) {
					t.Errorf("cascade keeps %v, one Compress %v", got, once)
				}
				if family(pol) == "random" {
					return
				}
				// Kept sets against the policy's float64 oracle.
				st := make([]oracleStats, cfg.Layers)
				var e, pref []float64
				for l := range st {
					st[l] = p.oraclePolicy(c.cfg.Policy, l)
					e = append(e, st[l].entropy)
					pref = append(pref, math.Pow(st[l].dispersion, 1/pol.tau1)*math.Pow(st[l].shift, 1/pol.tau2))
				}
				w := pol.windowOf(&c.cfg)
				m := n - w
				var b []int
				switch pol.layers {
				case EntropyLayers:
					var ok bool
					if b, ok = oracleBudgets(e, m, cfg.Layers*(cfg.Budget-w), false); !ok {
						skipped++
						return
					}
				case cakeLayers:
					b = cakeBudgets(pref, slices.Repeat([]int{m}, cfg.Layers), cfg.Layers*(cfg.Budget-w), true)
				case pyramidLayers:
					b = pyramidOracle(cfg.Budget, w, pol.beta, cfg.Layers, n)
				default:
					b = slices.Repeat([]int{cfg.Budget - w}, cfg.Layers)
				}
				for l := range cfg.Layers {
					if r.Layers[l].Budget != b[l] {
						t.Fatalf("layer %d: budget %d, oracle %d", l, r.Layers[l].Budget, b[l])
					}
					top := 0.0
					for _, h := range st[l].s {
						top = max(top, slices.Max(h))
					}
					want, clear := oracleKeepPolicy(c.cfg, c.cfg.Policy, st[l].s, b[l], 1e-4*top)
					if !clear {
						skipped++
						continue
					}
					compared++
					checkPrefix(t, l, once[l], want, m)
				}
			})
		}
	}
	checkClearCases(t, compared, skipped)
}

// family names the oracle a policy's scores are checked against: LAVa and
// its ablations share LAVa's scoring, the SnapKV variants SnapKV's.
func family(p Policy) string {
	switch name := p.Name(); name {
	case "LAVa", "LAVa-layer", "LAVa-head":
		return "lava"
	case "SnapKV", "PyramidKV", "Ada-SnapKV", "Ada-PyramidKV":
		return "snapkv"
	default:
		return strings.ToLower(name)
	}
}
