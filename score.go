package lava

import (
	"math"
	"math/rand/v2"
)

// This file scores a layer's prefix tokens: the window attention every
// attention-based policy shares, pooling, each built-in policy's scoring
// function (Policy.score), H2O's accumulation at Append, and the entropy
// that sets LAVa's layer budgets.

// scoreFunc fills out.s, [KVHeads][m] flattened, with the scores of layer
// L's m prefix tokens, using s's scratch; functions that also set a layer
// quantity (CAKE's dispersion and shift) add it to out.
type scoreFunc func(s *scratch, L *layer, l int, out *layerScores)

// scratch holds the buffers of one layer's scoring, reused across heads and
// layers within one Compress, and the shape of the layer being scored.
type scratch struct {
	c        *KVCache
	w, m     int       // the layer's window and prefix lengths
	qblk     []float32 // the window queries of one query head: [w][d]
	z        []float32 // their attention logits, then exp(logit − max): [w][n]
	rowInv   []float32 // 1/Σ of each row of z, so z·rowInv is the softmax
	abar     []float32 // window-mean attention over the prefix: [m]
	tmp      []float32 // one query head's pooled or reduced scores: [m]
	group    []float32 // the group's reduced scores before pooling: [m]
	overflow bool      // some window attention row was not finite
}

// layerScores are the scores of one layer's prefix tokens, [KVHeads][m]
// flattened, with the per-layer quantities the budget split needs.
type layerScores struct {
	s       []float32
	entropy float64 // normalised entropy of s
	// CAKE's layer preference inputs, summed over query heads, window rows
	// and prefix columns.
	dispersion, shift float64
}

// scoreLayer checks pending layer l's data and scores its prefix tokens
// under the cache's policy.
func (c *KVCache) scoreLayer(s *scratch, l int) (layerScores, error) {
	L := &c.layers[l]
	for kv, h := range L.heads {
		if !h.k.finite() || !h.v.finite() {
			return layerScores{}, invalidf("Compress: layer %d KV head %d holds a NaN or infinite key or value (or one beyond float16 range)", l, kv)
		}
	}
	if !finite(L.queries) {
		return layerScores{}, invalidf("Compress: layer %d holds a NaN or infinite query", l)
	}
	s.w = c.cfg.Policy.windowOf(&c.cfg)
	s.m = L.heads[0].len() - s.w
	s.overflow = false
	out := layerScores{s: make([]float32, c.cfg.KVHeads*s.m)}
	c.cfg.Policy.score(s, L, l, &out)
	if s.overflow || !finite(out.s) {
		return layerScores{}, invalidf("Compress: layer %d scores are not finite (query·key products overflow, or a Scorer's NaN)", l)
	}
	out.entropy = entropy(out.s)
	return out, nil
}

// windowAttention computes the softmax attention of the last w queries of
// query head qh over the layer's keys: row j's softmax runs over all keys
// up to and including its own position m+j. It leaves the unnormalised
// rows in s.z and their inverse sums in s.rowInv, and returns abar, the
// window mean over the m prefix keys.
func (s *scratch) windowAttention(L *layer, qh int) []float32 {
	c := s.c
	d, W, w, m := c.cfg.HeadDim, c.cfg.Window, s.w, s.m
	n := m + w
	row := c.cfg.Heads * d
	s.qblk = growTo(s.qblk, w*d)
	for j := range w {
		slot := (m + j) % W // the ring of the last Window queries
		copy(s.qblk[j*d:(j+1)*d], L.queries[slot*row+qh*d:slot*row+(qh+1)*d])
	}
	s.z = growTo(s.z, w*n)
	s.rowInv = growTo(s.rowInv, w)
	scale := float32(1 / math.Sqrt(float64(d)))
	L.heads[qh/c.group].k.score(s.qblk, n, d, scale, s.z)
	s.abar = growTo(s.abar, m)
	clear(s.abar)
	for j := range w {
		z := s.z[j*n : j*n+m+j+1] // causal: keys up to position m+j
		s.rowInv[j] = 1 / expSub(z, maxOf(z))
		if !finite(s.rowInv[j : j+1]) {
			s.overflow = true
		}
		axpy(s.rowInv[j]/float32(w), z[:m], s.abar)
	}
	return s.abar
}

// pool smooths x along the token axis into out with the policy's pooling.
func (s *scratch) pool(x, out []float32) {
	p := &s.c.cfg.Policy
	r := p.kernel / 2
	n := len(x)
	for i := range out {
		lo, hi := max(0, i-r), min(n, i+r+1)
		if p.pool == PoolMax {
			out[i] = maxGeneric(x[lo:hi])
			continue
		}
		var sum float32
		for _, v := range x[lo:hi] {
			sum += v
		}
		out[i] = sum / float32(p.kernel)
	}
}

// headScores returns KV head kv's slice of out.
func (s *scratch) headScores(out *layerScores, kv int) []float32 {
	return out.s[kv*s.m : (kv+1)*s.m]
}

// scoreLAVa pools each query head's window attention, takes the group
// maximum, and scales by the head's largest value L1 norm.
func scoreLAVa(s *scratch, L *layer, _ int, out *layerScores) {
	g, d := s.c.group, s.c.cfg.HeadDim
	s.tmp = growTo(s.tmp, s.m)
	for kv := range L.heads {
		sk := s.headScores(out, kv)
		for qh := kv * g; qh < (kv+1)*g; qh++ {
			s.pool(s.windowAttention(L, qh), s.tmp)
			for i, v := range s.tmp {
				sk[i] = max(sk[i], v)
			}
		}
		var vbar float32
		for i := range s.m {
			vbar = max(vbar, L.heads[kv].v.l1(i, d))
		}
		for i := range sk {
			sk[i] *= vbar
		}
	}
}

// scoreSnapKV averages the window attention over the group, then pools.
func scoreSnapKV(s *scratch, L *layer, _ int, out *layerScores) {
	g := s.c.group
	s.group = growTo(s.group, s.m)
	for kv := range L.heads {
		clear(s.group)
		for qh := kv * g; qh < (kv+1)*g; qh++ {
			axpy(1/float32(g), s.windowAttention(L, qh), s.group)
		}
		s.pool(s.group, s.headScores(out, kv))
	}
}

// scoreVATP is SnapKV's score times each token's value L1 norm.
func scoreVATP(s *scratch, L *layer, l int, out *layerScores) {
	scoreSnapKV(s, L, l, out)
	d := s.c.cfg.HeadDim
	for kv := range L.heads {
		sk := s.headScores(out, kv)
		for i := range sk {
			sk[i] *= L.heads[kv].v.l1(i, d)
		}
	}
}

// scoreCAKE scores each query head's prefix columns by mean + γ·variance
// over the window rows, pools them, and averages the group; it adds the
// layer's dispersion and shift to out.
func scoreCAKE(s *scratch, L *layer, _ int, out *layerScores) {
	g := s.c.group
	s.tmp = growTo(s.tmp, s.m)
	for kv := range L.heads {
		sk := s.headScores(out, kv)
		for qh := kv * g; qh < (kv+1)*g; qh++ {
			s.windowAttention(L, qh)
			s.pool(s.cakeColumn(out), s.tmp)
			axpy(1/float32(g), s.tmp, sk)
		}
	}
}

// cakeColumn turns the window attention in s.z into CAKE's per-token score
// mean_j A + γ·var_j A over the prefix columns (unbiased variance over the
// w window rows), and adds the query head's share of the layer's dispersion
// −Σ A·log A and shift Σ var to out.
func (s *scratch) cakeColumn(out *layerScores) []float32 {
	w, m, n := s.w, s.m, s.m+s.w
	gamma := s.c.cfg.Policy.gamma
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
		v := max((sq-sum*mean)/float64(w-1), 0)
		out.shift += v
		s.abar[i] = float32(mean + gamma*v)
	}
	return s.abar
}

// scoreTOVA scores by the last token's attention, averaged over every query
// head of the layer: the same scores for every KV head.
func scoreTOVA(s *scratch, L *layer, _ int, out *layerScores) {
	H := s.c.cfg.Heads
	first := s.headScores(out, 0)
	for qh := range H {
		axpy(1/float32(H), s.windowAttention(L, qh), first)
	}
	for kv := 1; kv < len(L.heads); kv++ {
		copy(s.headScores(out, kv), first)
	}
}

// scoreStreaming ranks the sinks first, then the most recent tokens.
func scoreStreaming(s *scratch, L *layer, _ int, out *layerScores) {
	sinks := s.c.cfg.Policy.sinks
	for kv := range L.heads {
		sk := s.headScores(out, kv)
		for i := range sk {
			sk[i] = float32(i) // recent first
			if i < sinks {
				sk[i] = float32(s.m + sinks - i) // sinks above all
			}
		}
	}
}

// scoreRandom draws every score from a generator seeded by the policy's
// seed, the layer and the head.
func scoreRandom(s *scratch, L *layer, l int, out *layerScores) {
	seed, kvHeads := s.c.cfg.Policy.seed, uint64(s.c.cfg.KVHeads)
	for kv := range L.heads {
		rng := rand.New(rand.NewPCG(seed, uint64(l)*kvHeads+uint64(kv)))
		sk := s.headScores(out, kv)
		for i := range sk {
			sk[i] = rng.Float32()
		}
	}
}

// h2oBlock is how many prompt queries one kernel call scores at a time:
// their attention rows over the keys so far are the scratch H2O needs.
const h2oBlock = 32

// accumulateHeavy adds the attention of the t prompt tokens just appended to
// layer L (their queries q, [t][Heads][HeadDim]) to every key up to each
// query's position: H2O's column sums of the causal attention, computed as
// chunks arrive so that no n×n matrix is ever held. Once an Append comes
// without queries the sums stop growing and stay shorter than the head,
// which Compress reports.
func (c *KVCache) accumulateHeavy(L *layer, q []float32, t int) {
	n := L.heads[0].len() // keys so far, this chunk's included
	first := n - t        // position of the chunk's first token
	if L.heavy == nil {
		L.heavy = make([][]float32, c.cfg.KVHeads)
	}
	if q == nil || len(L.heavy[0]) != first {
		return
	}
	d, H, g := c.cfg.HeadDim, c.cfg.Heads, c.group
	scale := float32(1 / math.Sqrt(float64(d)))
	qblk := make([]float32, h2oBlock*d)
	rows := make([]float32, h2oBlock*n)
	for kv := range L.heads {
		L.heavy[kv] = append(L.heavy[kv], make([]float32, t)...)
		acc := L.heavy[kv]
		h := &L.heads[kv]
		for qh := kv * g; qh < (kv+1)*g; qh++ {
			for lo := 0; lo < t; lo += h2oBlock {
				hi := min(t, lo+h2oBlock)
				// Keys beyond the block's last query are masked anyway.
				nk := first + hi
				for j := lo; j < hi; j++ {
					copy(qblk[(j-lo)*d:(j-lo+1)*d], q[(j*H+qh)*d:(j*H+qh+1)*d])
				}
				z := rows[:(hi-lo)*nk]
				h.k.score(qblk[:(hi-lo)*d], nk, d, scale, z)
				for j := lo; j < hi; j++ {
					row := z[(j-lo)*nk : (j-lo)*nk+first+j+1] // causal
					inv := 1 / expSub(row, maxOf(row))
					axpy(inv, row, acc[:len(row)])
				}
			}
		}
	}
}

// scoreH2O ranks by the accumulated attention, averaged over the group.
func scoreH2O(s *scratch, L *layer, _ int, out *layerScores) {
	g := float32(s.c.group)
	for kv := range L.heads {
		sk := s.headScores(out, kv)
		for i := range sk {
			sk[i] = L.heavy[kv][i] / g
		}
	}
}

// entropy returns the normalised entropy of a layer's scores, in float64.
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
