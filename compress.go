package lava

import (
	"math"
	"slices"
)

// Report describes what one Compress did.
type Report struct {
	// Layers has one entry per layer, in order.
	Layers []LayerReport
	// BytesBefore and BytesAfter are the key and value bytes the cache
	// held before and after this Compress (see KVCache.Bytes).
	BytesBefore, BytesAfter int64
}

// LayerReport describes one layer after a Compress.
type LayerReport struct {
	// Compressed tells whether the layer has been through Compress; layers
	// not yet appended to are not.
	Compressed bool
	// Prompt is the number of tokens the layer held when it was compressed.
	Prompt int
	// Ranked tells whether the layer was scored and evicted from; a layer
	// whose prompt did not exceed Budget is kept whole and is not.
	Ranked bool
	// Entropy is the normalised entropy of the layer's scores, which sets
	// its share of the total budget.
	Entropy float64
	// Budget is b_l, the layer's average number of prefix entries (window
	// excluded) per KV head. It may exceed the prefix, which is then kept
	// whole.
	Budget int
	// Kept is the number of entries each KV head holds, window included.
	Kept []int
}

// Compress evicts entries so that every layer keeps on average Budget
// entries per KV head, ranking tokens with LAVa (spec sections 3–5). It
// scores the layers appended to since the last Compress, splits the total
// budget L·(Budget−Window) among all scored layers by entropy, and trims
// each layer to its share: in each layer the prefix tokens are ranked jointly
// over all KV heads, and every head keeps the Window most recent tokens plus
// the prefix tokens it wins.
//
// Compress may run once after the whole prompt has been appended to every
// layer, or after each layer as prefill goes (the cascade): layers
// compressed earlier are then trimmed again to their smaller shares, and the
// final kept sets are the same as with one Compress at the end. A layer's
// first Compress ends its prompt; later Appends are decode tokens, which are
// never evicted.
//
// Compress fails, leaving the cache unchanged, if a layer to score lacks the
// queries of its last Window tokens or holds NaN or infinite data.
func (c *KVCache) Compress() (Report, error) {
	before := c.Bytes()
	w := c.cfg.Window
	// Check and score every new layer before changing anything.
	sc := &scorer{c: c}
	fresh := map[int][]float32{}
	for l := range c.layers {
		L := &c.layers[l]
		if L.state != layerPending || L.tokens <= c.cfg.Budget {
			continue
		}
		if L.qTail < w {
			return Report{}, invalidf("Compress: layer %d has the queries of only its last %d tokens, want the last Window = %d", l, L.qTail, w)
		}
		if err := c.checkFinite(l); err != nil {
			return Report{}, err
		}
		s := sc.lavaScores(L)
		if !finite(s) {
			return Report{}, invalidf("Compress: layer %d scores overflow float32", l)
		}
		fresh[l] = s
	}
	return c.apply(fresh, before), nil
}

// apply ranks the layers whose prefix scores are in fresh ([KVHeads][m]
// flattened), splits the budget over them and the layers ranked before, and
// trims every ranked layer to its share.
func (c *KVCache) apply(fresh map[int][]float32, before int64) Report {
	w := c.cfg.Window
	// Budgets over every layer scored so far.
	var ids []int
	var e []float64
	var m []int
	for l := range c.layers {
		L := &c.layers[l]
		switch s, ok := fresh[l]; {
		case ok:
			ids, e, m = append(ids, l), append(e, entropy(s)), append(m, L.tokens-w)
		case L.ranked:
			ids, e, m = append(ids, l), append(e, L.entropy), append(m, L.prompt-w)
		}
	}
	b := layerBudgets(e, m, c.cfg.Layers*(c.cfg.Budget-w), c.cfg.Redistribute)

	for i, l := range ids {
		L := &c.layers[l]
		if s, ok := fresh[l]; ok {
			L.ranked, L.prompt, L.entropy = true, L.tokens, e[i]
			L.winners = rankAll(s)
			for kv := range L.heads {
				L.heads[kv].score = slices.Clone(s[kv*m[i] : (kv+1)*m[i]])
			}
			L.budget = math.MaxInt
		}
		if b[i] < L.budget {
			c.trim(L, b[i])
		}
	}
	for l := range c.layers {
		L := &c.layers[l]
		if L.state == layerPending {
			L.state, L.queries, L.qTail = layerCompressed, nil, 0
			if !L.ranked {
				L.prompt = L.tokens
			}
		}
	}
	return c.report(before)
}

// trim cuts a ranked layer down to the per-head budget b (spec section 4):
// the joint top Hkv·b of its prefix tokens decide how many each head keeps,
// and each head keeps its best that many. A budget that only shrinks keeps
// a prefix of each head's ranking, so trimming again gives the same result
// as trimming once.
func (c *KVCache) trim(L *layer, b int) {
	L.budget = b
	m := L.prompt - c.cfg.Window
	if b >= m {
		return // kept whole
	}
	L.winners = L.winners[:len(L.heads)*b]
	won := make([]int, len(L.heads))
	for _, s := range L.winners {
		won[int(s.idx)/m]++
	}
	caps := c.cfg.headCaps(won, b, m)
	var rank []scored
	var keep []int32
	for kv := range L.heads {
		h := &L.heads[kv]
		// Rows are in position order, so row index breaks ties like the
		// flat index does.
		rank = rank[:0]
		for i, s := range h.score {
			rank = append(rank, scored{s, int32(i)})
		}
		slices.SortFunc(rank, byRank)
		keep = keep[:0]
		for _, r := range rank[:min(caps[kv], len(rank))] {
			keep = append(keep, r.idx)
		}
		slices.Sort(keep)
		kept := len(keep)
		for i := len(h.score); i < h.len(); i++ {
			keep = append(keep, int32(i))
		}
		c.compact(h, keep, kept)
	}
}

// compact keeps the rows idx (strictly increasing) of h, of which the first
// scored are ranked prefix entries. Storage shrinks to a new array when at
// least half of it would be free, so that evicted memory is returned to the
// Go heap; otherwise rows move down in place and the capacity serves later
// decode Appends.
func (c *KVCache) compact(h *head, idx []int32, scored int) {
	d, n := c.cfg.HeadDim, len(idx)
	fresh := 2*(n+c.cfg.DecodeReserve) <= cap(h.pos)
	size := n + c.cfg.DecodeReserve
	if c.cfg.Element == Float16 {
		h.k16 = gatherInto(h.k16, idx, d, size, fresh, gatherRowsF16)
		h.v16 = gatherInto(h.v16, idx, d, size, fresh, gatherRowsF16)
	} else {
		h.k = gatherInto(h.k, idx, d, size, fresh, gatherRows)
		h.v = gatherInto(h.v, idx, d, size, fresh, gatherRows)
	}
	h.pos = gatherInto(h.pos, idx, 1, size, fresh, gatherRowsGeneric[int32])
	h.score = gatherInto(h.score, idx[:scored], 1, scored, fresh, gatherRowsGeneric[float32])
}

// gatherInto keeps the rows idx of src, in place or in a new array with
// room for size rows.
func gatherInto[T any](src []T, idx []int32, d, size int, fresh bool, gather func(dst, src []T, idx []int32, d int)) []T {
	dst := src
	if fresh {
		dst = make([]T, len(idx)*d, size*d)
	}
	gather(dst[:len(idx)*d], src, idx, d)
	return dst[:len(idx)*d]
}

func (c *KVCache) report(before int64) Report {
	r := Report{Layers: make([]LayerReport, len(c.layers)), BytesBefore: before, BytesAfter: c.Bytes()}
	for l := range c.layers {
		L := &c.layers[l]
		lr := LayerReport{Compressed: L.state == layerCompressed}
		if lr.Compressed {
			lr.Prompt, lr.Ranked, lr.Entropy, lr.Budget = L.prompt, L.ranked, L.entropy, L.budget
			if !L.ranked {
				lr.Budget = L.prompt - c.cfg.Window
			}
		}
		lr.Kept = make([]int, len(L.heads))
		for kv := range L.heads {
			lr.Kept[kv] = L.heads[kv].len()
		}
		r.Layers[l] = lr
	}
	return r
}
