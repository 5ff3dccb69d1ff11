package lava

import (
	"math"
)

// scorer holds the scratch buffers of one layer's scoring, reused across
// heads and layers within one Compress.
type scorer struct {
	c     *KVCache
	qblk  []float32 // the window queries of one query head: [w][d]
	z     []float32 // their attention over all n keys: [w][n]
	abar  []float32 // window-mean attention over the prefix: [m]
	plain []float32 // pooled abar of one query head: [m]
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
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
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

// windowMean sets s.abar[i], i < m, to the attention that the Window queries
// of query head qh pay to prefix key i, averaged over the window (spec
// section 2): each window query's softmax runs over all keys up to and
// including its own position.
func (s *scorer) windowMean(L *layer, qh int) []float32 {
	c := s.c
	w, d := c.cfg.Window, c.cfg.HeadDim
	n := L.heads[0].len()
	m := n - w
	row := c.cfg.Heads * d
	s.qblk = grow(s.qblk, w*d)
	for j := range w {
		slot := (m + j) % w
		copy(s.qblk[j*d:(j+1)*d], L.queries[slot*row+qh*d:slot*row+(qh+1)*d])
	}
	s.z = grow(s.z, w*n)
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
		sum := expSub(z, maxOf(z))
		axpy(1/(sum*float32(w)), z[:m], s.abar)
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

// maxL1 returns the largest L1 norm among the first m value rows of h.
func (c *KVCache) maxL1(h *head, m int) float32 {
	d := c.cfg.HeadDim
	var best float32
	for i := range m {
		var n float32
		if c.cfg.Element == Float16 {
			n = l1NormF16(h.v16[i*d : (i+1)*d])
		} else {
			n = l1Norm(h.v[i*d : (i+1)*d])
		}
		best = max(best, n)
	}
	return best
}

// lavaScores returns the LAVa score of every prefix token of a pending layer,
// [KVHeads][m] flattened (spec section 3): the largest pooled window
// attention among the query heads of the group, times the largest L1 norm of
// the head's prefix values.
func (s *scorer) lavaScores(L *layer) []float32 {
	c := s.c
	m := L.heads[0].len() - c.cfg.Window
	out := make([]float32, c.cfg.KVHeads*m)
	s.plain = grow(s.plain, m)
	for kv := range L.heads {
		sk := out[kv*m : (kv+1)*m]
		for qh := kv * c.group; qh < (kv+1)*c.group; qh++ {
			pool(c.cfg.Pooling, c.cfg.Kernel, s.windowMean(L, qh), s.plain)
			for i, p := range s.plain {
				sk[i] = max(sk[i], p)
			}
		}
		vbar := c.maxL1(&L.heads[kv], m)
		for i := range sk {
			sk[i] *= vbar
		}
	}
	return out
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
