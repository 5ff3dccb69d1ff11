package lava

import (
	"math"
	"math/rand/v2"
)

// scorer holds the scratch buffers of one layer's scoring, reused across
// heads and layers within one Compress.
type scorer struct {
	c      *KVCache
	qblk   []float32 // the window queries of one query head: [w][d]
	z      []float32 // their attention logits, then exp(logit − max): [w][n]
	rowInv []float32 // 1/Σ of each row of z, so z·rowInv is the softmax
	abar   []float32 // window-mean attention over the prefix: [m]
	tmp    []float32 // one query head's pooled or reduced scores: [m]
	group  []float32 // the group's reduced scores before pooling: [m]
}

// layerScores are the scores of one layer's prefix tokens, [KVHeads][m]
// flattened, with the per-layer quantities the budget split needs.
type layerScores struct {
	s       []float32
	entropy float64 // normalised entropy of s (spec section 5)
	// CAKE's layer preference inputs (spec section 7), summed over query
	// heads, window rows and prefix columns.
	dispersion, shift float64
}

func grow(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	return buf[:n]
}

// checkFinite reports an error if the keys, values or window queries of a
// pending layer hold NaN or ±Inf (which would poison every score).
func (c *KVCache) checkFinite(l int) error {
	L := &c.layers[l]
	for kv, h := range L.heads {
		var ok bool
		if c.cfg.Element == Float16 {
			ok = finiteF16(h.k16) && finiteF16(h.v16)
		} else {
			ok = finite(h.k) && finite(h.v)
		}
		if !ok {
			return invalidf("Compress: layer %d KV head %d holds a NaN or infinite key or value (or one beyond float16 range)", l, kv)
		}
	}
	if !finite(L.queries) {
		return invalidf("Compress: layer %d holds a NaN or infinite query", l)
	}
	return nil
}

func finite(x []float32) bool {
	for _, v := range x {
		if math.Float32bits(v)&0x7f800000 == 0x7f800000 { // exponent all ones: Inf or NaN
			return false
		}
	}
	return true
}

func finiteF16(x []uint16) bool {
	for _, v := range x {
		if v&0x7c00 == 0x7c00 {
			return false
		}
	}
	return true
}

// windowAttention computes the softmax attention of the last w queries of
// query head qh over the layer's keys (spec section 2): row j's softmax runs
// over all keys up to and including its own position m+j. It leaves the
// unnormalised rows in s.z and their inverse sums in s.rowInv, and returns
// abar, the window mean over the m = n−w prefix keys.
func (s *scorer) windowAttention(L *layer, qh, w int) []float32 {
	c := s.c
	d, W := c.cfg.HeadDim, c.cfg.Window
	n := L.heads[0].len()
	m := n - w
	row := c.cfg.Heads * d
	s.qblk = grow(s.qblk, w*d)
	for j := range w {
		slot := (m + j) % W // the ring of the last Window queries
		copy(s.qblk[j*d:(j+1)*d], L.queries[slot*row+qh*d:slot*row+(qh+1)*d])
	}
	s.z = grow(s.z, w*n)
	s.rowInv = grow(s.rowInv, w)
	h := &L.heads[qh/c.group]
	scale := float32(1 / math.Sqrt(float64(d)))
	if c.cfg.Element == Float16 {
		scoreBlockF16(s.qblk, h.k16, d, scale, s.z)
	} else {
		scoreBlock(s.qblk, h.k, d, scale, s.z)
	}
	s.abar = grow(s.abar, m)
	clear(s.abar)
	for j := range w {
		z := s.z[j*n : j*n+m+j+1] // causal: keys up to position m+j
		s.rowInv[j] = 1 / expSub(z, maxOf(z))
		axpy(s.rowInv[j]/float32(w), z[:m], s.abar)
	}
	return s.abar
}

// pool smooths x along the token axis into out (spec section 2).
func pool(kind Pooling, kernel int, x, out []float32) {
	r := kernel / 2
	n := len(x)
	for i := range out {
		lo, hi := max(0, i-r), min(n, i+r+1)
		if kind == PoolMax {
			out[i] = maxGeneric(x[lo:hi])
			continue
		}
		var s float32
		for _, v := range x[lo:hi] {
			s += v
		}
		out[i] = s / float32(kernel)
	}
}

// valueL1 returns the L1 norm of value row i of h.
func (c *KVCache) valueL1(h *head, i int) float32 {
	d := c.cfg.HeadDim
	if c.cfg.Element == Float16 {
		return l1NormF16(h.v16[i*d : (i+1)*d])
	}
	return l1Norm(h.v[i*d : (i+1)*d])
}

// score computes the scores of pending layer l's prefix tokens under the
// cache's policy.
func (s *scorer) score(l int) layerScores {
	c := s.c
	L := &c.layers[l]
	p := c.cfg.Policy
	w := p.window(&c.cfg)
	m := L.heads[0].len() - w
	g := c.group
	out := layerScores{s: make([]float32, c.cfg.KVHeads*m)}
	kind, kernel := p.pooling(&c.cfg)
	s.tmp = grow(s.tmp, m)
	s.group = grow(s.group, m)
	for kv := range L.heads {
		sk := out.s[kv*m : (kv+1)*m]
		h := &L.heads[kv]
		switch p.kind {
		case kindLAVa:
			// Pool per query head, then the group maximum, then scale.
			for qh := kv * g; qh < (kv+1)*g; qh++ {
				pool(kind, kernel, s.windowAttention(L, qh, w), s.tmp)
				for i, v := range s.tmp {
					sk[i] = max(sk[i], v)
				}
			}
			var vbar float32
			for i := range m {
				vbar = max(vbar, c.valueL1(h, i))
			}
			for i := range sk {
				sk[i] *= vbar
			}
		case kindSnapKV, kindVATP, kindCAKE:
			// The group mean first, then pooling.
			clear(s.group)
			for qh := kv * g; qh < (kv+1)*g; qh++ {
				abar := s.windowAttention(L, qh, w)
				if p.kind == kindCAKE {
					abar = s.cakeColumn(&out, m, w, m+w, p.gamma)
				}
				axpy(1/float32(g), abar, s.group)
			}
			pool(kind, kernel, s.group, sk)
			if p.kind == kindVATP {
				for i := range sk {
					sk[i] *= c.valueL1(h, i)
				}
			}
		case kindH2O:
			for i := range sk {
				sk[i] = L.heavy[kv][i] / float32(g)
			}
		case kindTOVA:
			// The last token's attention, averaged over every query
			// head of the layer: the same scores for every KV head.
			if kv == 0 {
				for qh := range c.cfg.Heads {
					axpy(1/float32(c.cfg.Heads), s.windowAttention(L, qh, w), sk)
				}
			} else {
				copy(sk, out.s[:m])
			}
		case kindStreaming:
			for i := range sk {
				sk[i] = float32(i) // recent first
				if i < p.sinks {
					sk[i] = float32(m + p.sinks - i) // sinks above all
				}
			}
		case kindRandom:
			rng := rand.New(rand.NewPCG(p.seed, uint64(l)*uint64(c.cfg.KVHeads)+uint64(kv)))
			for i := range sk {
				sk[i] = rng.Float32()
			}
		case kindCustom:
			s.custom(l, kv, m, w, sk)
		}
	}
	out.entropy = entropy(out.s)
	return out
}

// cakeColumn turns the window attention in s.z into CAKE's per-token score
// mean_j A + γ·var_j A over the prefix columns (population variance over
// the w window rows), and adds the query head's share of the layer's
// dispersion −Σ A·log A and shift Σ var to out.
func (s *scorer) cakeColumn(out *layerScores, m, w, n int, gamma float64) []float32 {
	for i := range m {
		var sum, sq float64
		for j := range w {
			a := float64(s.z[j*n+i] * s.rowInv[j])
			sum += a
			sq += a * a
			if a > 0 {
				out.dispersion -= a * math.Log(a)
			}
		}
		mean := sum / float64(w)
		v := max(sq/float64(w)-mean*mean, 0)
		out.shift += v
		s.abar[i] = float32(mean + gamma*v)
	}
	return s.abar
}

// entropy returns the normalised entropy of a layer's scores (spec
// section 5), in float64.
func entropy(s []float32) float64 {
	if len(s) < 2 {
		return 0 // a single token has no uncertainty (and log 1 = 0)
	}
	var total float64
	for _, v := range s {
		total += float64(v)
	}
	var h float64
	for _, v := range s {
		p := float64(v) / (total + 1e-16)
		h -= p * math.Log(p+1e-16)
	}
	return h / math.Log(float64(len(s)))
}
