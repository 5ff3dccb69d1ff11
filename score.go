package lava

import (
	"math"
	"math/rand/v2"
	"slices"
)

// This file scores a layer's prefix tokens: the window attention every
// attention-based policy shares, pooling, each built-in policy's scoring
// function (Policy.score, or Policy.scoreAll), H2O's accumulation at
// Append, and the entropy that sets LAVa's layer budgets.

// scoreFunc fills sk, the scores of the candidates of KV head kv of layer l
// (L), using s's scratch, and returns the head's share of the layer
// quantities (CAKE's dispersion and shift; zero for the other policies).
// It writes nothing else, so that heads can be scored concurrently, each
// with its own scratch.
type scoreFunc func(s *scratch, L *layer, l, kv int, sk []float32) layerStats

// layerScoreFunc fills out.s, the scores of layer L's candidates head after
// head, in one call: for the policies whose heads share their scores
// (TOVA) or that call the host (Custom).
type layerScoreFunc func(s *scratch, L *layer, l int, out *layerScores)

// scratch holds the buffers of one goroutine's scoring, reused across heads
// and layers within one Compress, and the shape of the layer being scored.
type scratch struct {
	c *KVCache
	// The layer being scored: its window w, its tokens P, the candidates
	// of each head (held entries at positions before P−w, its first rows)
	// and the flat index of each head's first candidate (off[kv+1] − off[kv]
	// = cand[kv]).
	w, P      int
	cand, off []int
	qblk      []float32 // the window queries of one query head: [w][d]
	z         []float32 // their attention logits, then exp(logit − max): [w][n]
	rowInv    []float32 // 1/Σ of each row of z, so z·rowInv is the softmax
	abar      []float32 // window-mean attention over the candidates: [m]
	tmp       []float32 // one query head's pooled or reduced scores: [m]
	group     []float32 // the group's reduced scores before pooling: [m]
	norms     []float32 // the candidates' value L1 norms: [m]
	overflow  bool      // some window attention row was not finite
}

// layerScores are the scores of one layer's candidates, head after head,
// with the per-layer quantities the budget split needs.
type layerScores struct {
	l         int // the layer
	s         []float32
	cand, off []int // each head's candidates and the flat index of its first
	layerStats
}

// layerStats are what a layer keeps of its latest scores for the budget
// split.
type layerStats struct {
	entropy float64 // normalised entropy of the scores
	// CAKE's layer preference inputs, summed over query heads, window rows
	// and candidate columns.
	dispersion, shift float64
}

// scoreLayer checks layer l's queries and scores its candidates under the
// cache's policy.
func (c *KVCache) scoreLayer(s *scratch, l int) (layerScores, error) {
	out, err := c.newScores(l)
	if err != nil {
		return layerScores{}, err
	}
	L := &c.layers[l]
	s.at(L, &out)
	s.overflow = false
	if p := &c.cfg.Policy; p.scoreAll != nil {
		p.scoreAll(s, L, l, &out)
	} else {
		for kv := range L.heads {
			out.add(p.score(s, L, l, kv, s.headScores(&out, kv)))
		}
	}
	return out, c.checkScores(l, &out, s.overflow)
}

// newScores checks layer l's queries and returns room for the scores of
// its candidates: the held entries of each head at positions before the
// window.
func (c *KVCache) newScores(l int) (layerScores, error) {
	L := &c.layers[l]
	// Keys and values were checked at Append; queries are not.
	if !finite(L.queries) {
		return layerScores{}, invalidf("Compress: layer %d holds a NaN or infinite query", l)
	}
	w, P := c.cfg.Policy.windowOf(&c.cfg), L.tokens
	cand, off := make([]int, len(L.heads)), make([]int, len(L.heads)+1)
	for kv := range L.heads {
		cand[kv], _ = slices.BinarySearch(L.heads[kv].pos, int32(P-w))
		off[kv+1] = off[kv] + cand[kv]
	}
	return layerScores{l: l, s: make([]float32, off[len(L.heads)]), cand: cand, off: off}, nil
}

// at sets s to score layer L, whose scores go to out.
func (s *scratch) at(L *layer, out *layerScores) {
	s.w, s.P = s.c.cfg.Policy.windowOf(&s.c.cfg), L.tokens
	s.cand, s.off = out.cand, out.off
}

// add adds one head's share of the layer quantities to ls.
func (ls *layerStats) add(h layerStats) {
	ls.dispersion += h.dispersion
	ls.shift += h.shift
}

// checkScores fails if layer l's scores in out are not finite, or their
// attention overflowed, and otherwise sets their entropy.
func (c *KVCache) checkScores(l int, out *layerScores, overflow bool) error {
	if overflow || !finite(out.s) {
		return invalidf("Compress: layer %d scores are not finite (query·key products overflow, or a Scorer's NaN)", l)
	}
	out.entropy = entropy(out.s)
	return nil
}

// scoreLayers checks and scores the layers ids, in order, on up to workers
// goroutines, one unit per KV head of each layer. It returns the layers'
// scores, or the error of the first layer that fails: what scoreLayer gives
// layer after layer.
func (c *KVCache) scoreLayers(ids []int, workers int) ([]layerScores, error) {
	outs := make([]layerScores, len(ids))
	var bad error // a layer whose queries are not finite: the layers before it are scored
	for i, l := range ids {
		if outs[i], bad = c.newScores(l); bad != nil {
			ids, outs = ids[:i], outs[:i]
			break
		}
	}
	p := &c.cfg.Policy
	Hkv := c.cfg.KVHeads
	stats := make([]layerStats, len(ids)*Hkv)
	overflow := make([]bool, len(ids)*Hkv)
	ss := make([]scratch, min(workers, len(stats)))
	for w := range ss {
		ss[w].c = c
	}
	parallel(len(ss), len(stats), func(w, u int) {
		i, kv := u/Hkv, u%Hkv
		s, L, out := &ss[w], &c.layers[ids[i]], &outs[i]
		s.at(L, out)
		s.overflow = false
		stats[u] = p.score(s, L, ids[i], kv, s.headScores(out, kv))
		overflow[u] = s.overflow
	})
	for i, l := range ids {
		for kv := range Hkv {
			outs[i].add(stats[i*Hkv+kv])
		}
		if err := c.checkScores(l, &outs[i], slices.Contains(overflow[i*Hkv:(i+1)*Hkv], true)); err != nil {
			return nil, err
		}
	}
	return outs, bad
}

// windowAttention computes the softmax attention of the last w queries of
// query head qh over the entries its KV head holds: row j, the query at
// position P−w+j, attends to the entries at positions up to its own. It
// leaves the unnormalised rows in s.z ([w][n], n the head's entries) and
// their inverse sums in s.rowInv, and returns abar, the window mean over
// the head's candidates.
func (s *scratch) windowAttention(L *layer, qh int) []float32 {
	c := s.c
	d, W, w := c.cfg.HeadDim, c.cfg.queryRing(), s.w
	kv := qh / c.group
	h := &L.heads[kv]
	n, m := h.len(), s.cand[kv]
	row := c.cfg.Heads * d
	s.qblk = growTo(s.qblk, w*d)
	for j := range w {
		slot := (s.P - w + j) % W // the ring of the last Window queries
		copy(s.qblk[j*d:(j+1)*d], L.queries[slot*row+qh*d:slot*row+(qh+1)*d])
	}
	s.z = growTo(s.z, w*n)
	s.rowInv = growTo(s.rowInv, w)
	scale := float32(c.cfg.AttentionScale)
	h.k.score(s.qblk, n, d, scale, s.z)
	s.abar = growTo(s.abar, m)
	clear(s.abar)
	visible := m // entries at positions up to the query's: the candidates and more
	for j := range w {
		for visible < n && int(h.pos[visible]) <= s.P-w+j {
			visible++
		}
		z := s.z[j*n : j*n+visible] // causal, by position
		s.rowInv[j] = 1 / expSub(z, maxOf(z))
		if !finite(s.rowInv[j : j+1]) {
			s.overflow = true
		}
		axpy(s.rowInv[j]/float32(w), z[:m], s.abar)
	}
	return s.abar
}

// pool smooths the candidate scores x of head kv of L into out with the
// policy's pooling, by position: entry i pools the candidates within k/2
// positions of its own (on a gap-free prefix, the k/2 neighbours each side).
func (s *scratch) pool(L *layer, kv int, x, out []float32) {
	p := &s.c.cfg.Policy
	r := int32(p.kernel / 2)
	pos := L.heads[kv].pos[:len(x)]
	lo, hi := 0, 0
	for i := range out {
		for pos[lo] < pos[i]-r {
			lo++
		}
		for hi < len(pos) && pos[hi] <= pos[i]+r {
			hi++
		}
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
	return out.s[s.off[kv]:s.off[kv+1]]
}

// scoreLAVa pools each query head's window attention, takes the group
// maximum, and scales by the head's largest value L1 norm. Max-pooling
// commutes with the group maximum (both take the largest of the same
// values, exactly), so it pools once, after the maximum; average pooling
// pools each query head first.
func scoreLAVa(s *scratch, L *layer, _, kv int, sk []float32) layerStats {
	g, d := s.c.group, s.c.cfg.HeadDim
	if s.c.cfg.Policy.pool == PoolMax {
		s.group = growTo(s.group, len(sk))
		copy(s.group, s.windowAttention(L, kv*g))
		for qh := kv*g + 1; qh < (kv+1)*g; qh++ {
			for i, v := range s.windowAttention(L, qh) {
				s.group[i] = max(s.group[i], v)
			}
		}
		s.pool(L, kv, s.group, sk)
	} else {
		s.tmp = growTo(s.tmp, len(sk))
		for qh := kv * g; qh < (kv+1)*g; qh++ {
			s.pool(L, kv, s.windowAttention(L, qh), s.tmp)
			for i, v := range s.tmp {
				sk[i] = max(sk[i], v)
			}
		}
	}
	s.norms = growTo(s.norms, len(sk))
	L.heads[kv].v.l1s(s.norms, d)
	var vbar float32
	for _, v := range s.norms {
		vbar = max(vbar, v)
	}
	for i := range sk {
		sk[i] *= vbar
	}
	return layerStats{}
}

// scoreSnapKV averages the window attention over the group, then pools.
func scoreSnapKV(s *scratch, L *layer, _, kv int, sk []float32) layerStats {
	g := s.c.group
	s.group = growTo(s.group, len(sk))
	clear(s.group)
	for qh := kv * g; qh < (kv+1)*g; qh++ {
		axpy(1/float32(g), s.windowAttention(L, qh), s.group)
	}
	s.pool(L, kv, s.group, sk)
	return layerStats{}
}

// scoreVATP is SnapKV's score times each token's value L1 norm.
func scoreVATP(s *scratch, L *layer, l, kv int, sk []float32) layerStats {
	scoreSnapKV(s, L, l, kv, sk)
	s.norms = growTo(s.norms, len(sk))
	L.heads[kv].v.l1s(s.norms, s.c.cfg.HeadDim)
	for i, v := range s.norms {
		sk[i] *= v
	}
	return layerStats{}
}

// scoreCAKE scores each query head's prefix columns by mean + γ·variance
// over the window rows, pools them, and averages the group; it returns the
// head's share of the layer's dispersion and shift.
func scoreCAKE(s *scratch, L *layer, _, kv int, sk []float32) layerStats {
	g := s.c.group
	var st layerStats
	s.tmp = growTo(s.tmp, len(sk))
	for qh := kv * g; qh < (kv+1)*g; qh++ {
		s.windowAttention(L, qh)
		s.pool(L, kv, s.cakeColumn(&st, L.heads[kv].len(), len(sk)), s.tmp)
		axpy(1/float32(g), s.tmp, sk)
	}
	return st
}

// cakeColumn turns the window attention in s.z (rows of n entries) into
// CAKE's per-token score mean_j A + γ·var_j A over the m candidate columns
// (unbiased variance over the w window rows), and adds the query head's
// share of the layer's dispersion −Σ A·log A and shift Σ var to out.
func (s *scratch) cakeColumn(out *layerStats, n, m int) []float32 {
	w := s.w
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
// head of the layer: the same scores for every KV head, whose kept sets are
// one shared set (so their candidates are the same positions).
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
func scoreStreaming(s *scratch, L *layer, _, kv int, sk []float32) layerStats {
	sinks := int32(s.c.cfg.Policy.sinks)
	pos := L.heads[kv].pos
	for i := range sk {
		sk[i] = float32(i) // rows are in position order: recent first
		if pos[i] < sinks {
			sk[i] = float32(len(sk) + int(sinks-pos[i])) // sinks above all
		}
	}
	return layerStats{}
}

// scoreRandom draws every score from a generator seeded by the policy's
// seed, the layer and the head.
func scoreRandom(s *scratch, _ *layer, l, kv int, sk []float32) layerStats {
	seed, kvHeads := s.c.cfg.Policy.seed, uint64(s.c.cfg.KVHeads)
	rng := rand.New(rand.NewPCG(seed, uint64(l)*kvHeads+uint64(kv)))
	for i := range sk {
		sk[i] = rng.Float32()
	}
	return layerStats{}
}

// h2oBlock is how many prompt queries one kernel call scores at a time:
// their attention rows over the keys so far are the scratch H2O needs.
const h2oBlock = 32

// accumulateHeavy adds the attention of the last t tokens of layer L
// (their queries q, [t][Heads][HeadDim]) to every held entry up to each
// query's position: H2O's column sums of the causal attention, computed as
// queries arrive so that no n×n matrix is ever held.
func (c *KVCache) accumulateHeavy(L *layer, q []float32, t int) {
	d, H, g := c.cfg.HeadDim, c.cfg.Heads, c.group
	scale := float32(c.cfg.AttentionScale)
	qblk := growTo(c.heavyQ, h2oBlock*d)
	c.heavyQ = qblk
	for kv := range L.heads {
		h := &L.heads[kv]
		n := h.len()
		first := n - t // row of the first of the t tokens
		if first < 0 || int(h.pos[first]) != L.tokens-t {
			L.qFrom = L.tokens // evicted before its attention: the sums are incomplete
			return
		}
		rows := growTo(c.heavyZ, h2oBlock*n)
		c.heavyZ = rows
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
					axpy(inv, row, h.heavy[:len(row)])
				}
			}
		}
	}
}

// scoreH2O ranks by the accumulated attention, averaged over the group.
func scoreH2O(s *scratch, L *layer, _, kv int, sk []float32) layerStats {
	g := float32(s.c.group)
	for i := range sk {
		sk[i] = L.heads[kv].heavy[i] / g
	}
	return layerStats{}
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
