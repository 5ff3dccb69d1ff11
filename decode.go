package lava

import "math"

// This file is the decode path: attention of one token over the cache, and
// the eviction of the policies that hold a fixed cache size while
// generating (Policy.decode): the oldest non-sink entry at Append
// (StreamingLLM), or the entry the current query attends to least at Attend
// (per head for CAKE, shared by the layer's heads for TOVA).

// Attend computes single-token decode attention for every query head of a
// layer over the entries its KV head holds: out_h = softmax(q_h·Kᵀ/√d)·V,
// query head h reading KV head h/(Heads/KVHeads). q and out hold
// [Heads][HeadDim] values. A head with no entries gives zeros. Attend does
// not append q's token: call Append with its key and value first, as a
// decoder does, so the token attends to itself.
func (c *KVCache) Attend(layer int, q, out []float32) error {
	if layer < 0 || layer >= len(c.layers) {
		return invalidf("Attend: layer = %d, want 0 ≤ layer < %d", layer, len(c.layers))
	}
	d := c.cfg.HeadDim
	if len(q) != c.cfg.Heads*d {
		return invalidf("Attend: len(q) = %d, want Heads·HeadDim = %d", len(q), c.cfg.Heads*d)
	}
	if len(out) != len(q) {
		return invalidf("Attend: len(out) = %d, want Heads·HeadDim = %d", len(out), len(q))
	}
	scale := float32(1 / math.Sqrt(float64(d)))
	g := c.group
	L := &c.layers[layer]
	mode := c.cfg.Policy.decode
	// The policies that evict at Attend keep uniform heads (TOVA one shared
	// set), so every head has head 0's length and one test decides for all.
	evict := L.limit > 0 && (mode == decodeLeastAttendedHead || mode == decodeLeastAttendedLayer) && L.heads[0].len() > L.limit
	heads := float32(g) // the attention eviction ranks by: the group's mean
	if mode == decodeLeastAttendedLayer {
		heads = float32(c.cfg.Heads) // or the layer's
	}
	for kv := range L.heads {
		h := &L.heads[kv]
		n := h.len()
		qs := q[kv*g*d : (kv+1)*g*d]
		outs := out[kv*g*d : (kv+1)*g*d]
		if n == 0 {
			clear(outs)
			continue
		}
		if cap(c.attn) < g*n {
			c.attn = make([]float32, g*max(n, cap(h.pos)))
			c.evictScore = make([]float32, max(n, cap(h.pos)))
		}
		p := c.attn[:g*n]
		h.k.score(qs, n, d, scale, p)
		es := c.evictScore[:n]
		if evict && (mode == decodeLeastAttendedHead || kv == 0) {
			clear(es)
		}
		// Unnormalised softmax rows; each output row is scaled once after.
		for i := range g {
			row := p[i*n : (i+1)*n]
			c.attnInv[i] = 1 / expSub(row, maxOf(row))
			if evict {
				axpy(c.attnInv[i]/heads, row, es)
			}
		}
		h.v.weightedSums(p, outs, d)
		for i := range g {
			o, inv := outs[i*d:(i+1)*d], c.attnInv[i]
			for t := range o {
				o[t] *= inv
			}
		}
		if evict && mode == decodeLeastAttendedHead {
			// The most recent Window entries are the window, kept.
			removeRows(h, argmin(es[:max(n-c.cfg.Window, 1)]), 1, d)
		}
	}
	if evict && mode == decodeLeastAttendedLayer {
		// Heads share one kept set, so one row goes from every head.
		r := argmin(c.evictScore[:L.heads[0].len()])
		for kv := range L.heads {
			removeRows(&L.heads[kv], r, 1, d)
		}
	}
	return nil
}

// decodeLimit is the number of entries per KV head that decode eviction
// holds a compressed layer to, or 0 for policies that never evict while
// decoding: the layer's budget plus the window, or Budget for a layer that
// was kept whole.
func (c *KVCache) decodeLimit(L *layer) int {
	if L.state != layerCompressed || c.cfg.Policy.decode == decodeKeep {
		return 0
	}
	if L.ranked {
		w := c.cfg.Policy.windowOf(&c.cfg)
		return min(L.budget, L.prompt-w) + w
	}
	return c.cfg.Budget
}

// evictOldest holds every head of L to L.limit entries by evicting the
// oldest entries after the attention sinks.
func (c *KVCache) evictOldest(L *layer) {
	for kv := range L.heads {
		h := &L.heads[kv]
		sinks := 0
		for sinks < h.len() && h.pos[sinks] < int32(c.cfg.Policy.sinks) {
			sinks++
		}
		if over := h.len() - L.limit; over > 0 {
			removeRows(h, sinks, over, c.cfg.HeadDim)
		}
	}
}

// removeRows deletes rows r..r+k−1 of h, moving later rows down; storage
// keeps its capacity for the next decode tokens.
func removeRows(h *head, r, k, d int) {
	n := h.len()
	h.k.remove(r, k, n, d)
	h.v.remove(r, k, n, d)
	h.pos = append(h.pos[:r], h.pos[r+k:]...)
	h.order = nil // decoding comes after the last Compress: no re-trim needs it
}

// argmin returns the index of the smallest element, the first on ties.
func argmin(x []float32) int {
	best := 0
	for i, v := range x {
		if v < x[best] {
			best = i
		}
	}
	return best
}
