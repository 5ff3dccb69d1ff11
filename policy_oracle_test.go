package lava

import (
	"math"
	"slices"
)

// attention returns, in float64, the softmax attention of query token j of
// query head qh of layer l over keys 0..j of its KV head (causal).
func (p prompt) attention(l, qh, j int) []float64 {
	cfg := p.cfg
	d, kv := cfg.HeadDim, qh/(cfg.Heads/cfg.KVHeads)
	q := p.q[l][(j*cfg.Heads+qh)*d:][:d]
	z := make([]float64, j+1)
	zmax := math.Inf(-1)
	for i := range z {
		k := p.k[l][(i*cfg.KVHeads+kv)*d:][:d]
		for t, x := range q {
			z[i] += float64(x) * float64(k[t])
		}
		z[i] /= math.Sqrt(float64(d))
		zmax = max(zmax, z[i])
	}
	var sum float64
	for i := range z {
		z[i] = math.Exp(z[i] - zmax)
		sum += z[i]
	}
	for i := range z {
		z[i] /= sum
	}
	return z
}

func poolOracle(kind Pooling, kernel int, x []float64) []float64 {
	out := make([]float64, len(x))
	r := kernel / 2
	for i := range x {
		for t := max(0, i-r); t <= min(len(x)-1, i+r); t++ {
			if kind == PoolMax {
				out[i] = max(out[i], x[t])
			} else {
				out[i] += x[t] / float64(kernel)
			}
		}
	}
	return out
}

// oracleStats are a layer's scores by the oracle with the quantities its
// budget split uses.
type oracleStats struct {
	s                          [][]float64
	entropy, dispersion, shift float64
}

// oraclePolicy computes the scores of layer l's prefix under pol in float64,
// straight from spec section 7's table. Random is not covered.
func (p prompt) oraclePolicy(pol Policy, l int) oracleStats {
	cfg := p.cfg
	if family(pol) == "lava" {
		s := p.oracleScores(l)
		return oracleStats{s: s, entropy: oracleEntropy(s)}
	}
	w := pol.windowOf(&cfg)
	m, g := p.n-w, cfg.Heads/cfg.KVHeads
	kind, kernel := pol.pool, pol.kernel
	var st oracleStats
	st.s = make([][]float64, cfg.KVHeads)
	for kv := range st.s {
		group := make([]float64, m)
		for qh := kv * g; qh < (kv+1)*g; qh++ {
			switch family(pol) {
			case "snapkv", "vatp":
				for j := m; j < p.n; j++ {
					for i, a := range p.attention(l, qh, j)[:m] {
						group[i] += a / float64(w) / float64(g)
					}
				}
			case "cake":
				col := make([]float64, m)
				rows := make([][]float64, w)
				for j := range w {
					rows[j] = p.attention(l, qh, m+j)
				}
				for i := range m {
					var mean, v float64
					for j := range w {
						mean += rows[j][i] / float64(w)
						if a := rows[j][i]; a > 0 {
							st.dispersion -= a * math.Log(a)
						}
					}
					for j := range w {
						v += (rows[j][i] - mean) * (rows[j][i] - mean) / float64(w-1)
					}
					st.shift += v
					col[i] = mean + pol.gamma*v
				}
				// Each query head's column is pooled, then the group averaged.
				for i, x := range poolOracle(kind, kernel, col) {
					group[i] += x / float64(g)
				}
			case "h2o":
				for j := range p.n {
					for i, a := range p.attention(l, qh, j) {
						if i < m {
							group[i] += a / float64(g)
						}
					}
				}
			}
		}
		switch family(pol) {
		case "snapkv", "vatp":
			st.s[kv] = poolOracle(kind, kernel, group)
		case "cake":
			st.s[kv] = group
		case "h2o":
			st.s[kv] = group
		case "tova":
			st.s[kv] = make([]float64, m)
			for qh := range cfg.Heads {
				for i, a := range p.attention(l, qh, p.n-1)[:m] {
					st.s[kv][i] += a / float64(cfg.Heads)
				}
			}
		case "streamingllm":
			st.s[kv] = make([]float64, m)
			for i := range m {
				st.s[kv][i] = float64(i)
				if i < pol.sinks {
					st.s[kv][i] = float64(2*m - i)
				}
			}
		}
		if family(pol) == "vatp" {
			for i := range m {
				var n float64
				for _, x := range p.v[l][(i*cfg.KVHeads+kv)*cfg.HeadDim:][:cfg.HeadDim] {
					n += math.Abs(float64(x))
				}
				st.s[kv][i] *= n
			}
		}
	}
	st.entropy = oracleEntropy(st.s)
	return st
}

// oracleKeepPolicy returns the prefix indices each head keeps with per-head
// budget b under pol (joint or uniform head budgets, with the policy's
// floor), sorted, and whether the choice is clear of near-ties.
func oracleKeepPolicy(cfg Config, pol Policy, s [][]float64, b int, tol float64) ([][]int, bool) {
	if pol.heads == JointHeads {
		c := cfg
		c.Policy = pol
		return oracleKeep(c, s, b, tol)
	}
	m := len(s[0])
	keep := make([][]int, len(s))
	ok := true
	for kv, h := range s {
		idx := make([]int, m)
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int {
			switch {
			case h[a] > h[b]:
				return -1
			case h[a] < h[b]:
				return 1
			}
			return 0
		})
		k := min(b, m)
		if k > 0 && k < m {
			x, y := h[idx[k-1]], h[idx[k]]
			ok = ok && (x == y || x-y > tol)
		}
		keep[kv] = slices.Clone(idx[:k])
		slices.Sort(keep[kv])
	}
	return keep, ok
}

// pyramidOracle is spec section 7's PyramidKV schedule, written out.
func pyramidOracle(B, w int, beta float64, L, n int) []int {
	bbar := float64(B - w)
	lo := math.Floor(bbar / beta)
	hi := 2*bbar - lo
	if hi >= float64(n-w) {
		hi = float64(n - w)
		lo = 2*bbar - hi
	}
	out := make([]int, L)
	step := math.Floor((hi - lo) / float64(L-1))
	for l := range out {
		out[l] = int(hi - float64(l)*step)
	}
	return out
}
