package lava

// Decode-time eviction of the policies that keep a fixed cache size while
// generating: StreamingLLM (oldest non-sink entry, at Append), TOVA and CAKE
// (the entry the current query attends to least, at Attend).

// decodeLimit is the number of entries per KV head that decode eviction
// holds a compressed layer to, or 0 for policies that never evict while
// decoding.
func (c *KVCache) decodeLimit(L *layer) int {
	if L.state != layerCompressed {
		return 0
	}
	switch c.cfg.Policy.kind {
	case kindStreaming, kindTOVA:
		return c.cfg.Budget
	case kindCAKE:
		if L.ranked {
			return min(L.budget, L.prompt-c.cfg.Window) + c.cfg.Window
		}
		return c.cfg.Budget
	}
	return 0
}

// evictOldest holds every head of L to L.limit entries by evicting the
// oldest entries after the attention sinks (StreamingLLM).
func (c *KVCache) evictOldest(L *layer) {
	if c.cfg.Policy.kind != kindStreaming {
		return
	}
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

// removeRow deletes row r of h, moving later rows down.
func removeRow(h *head, r, d int) { removeRows(h, r, 1, d) }

// removeRows deletes rows r..r+k−1 of h, moving later rows down; storage
// keeps its capacity for the next decode tokens.
func removeRows(h *head, r, k, d int) {
	n := h.len()
	if h.k16 != nil {
		h.k16 = append(h.k16[:r*d], h.k16[(r+k)*d:n*d]...)
		h.v16 = append(h.v16[:r*d], h.v16[(r+k)*d:n*d]...)
	} else {
		h.k = append(h.k[:r*d], h.k[(r+k)*d:n*d]...)
		h.v = append(h.v[:r*d], h.v[(r+k)*d:n*d]...)
	}
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
