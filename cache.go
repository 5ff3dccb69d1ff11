package lava

import (
	"math"
	"slices"
)

// KVCache holds the keys and values of every layer and KV head of one
// sequence, with the original position of every entry. Each KV head of each
// layer is its own variable-length sequence: after Compress the heads of a
// layer keep different numbers of entries.
//
// A KVCache is not safe for concurrent use.
type KVCache struct {
	cfg    Config
	group  int // query heads per KV head
	layers []layer
	// attn is the scratch of Attend: the scores of one group of query heads
	// over one KV head, attnInv their softmax denominators' inverses, and
	// evictScore the attention decode eviction ranks by.
	attn, attnInv, evictScore []float32
}

// layerState is where a layer is in its life: nothing appended, prompt
// appended and waiting for Compress, or compressed (later Appends decode).
type layerState uint8

const (
	layerEmpty layerState = iota
	layerPending
	layerCompressed
)

type layer struct {
	heads  []head
	tokens int // tokens ever appended: the position of the next one
	state  layerState

	// Queries of the most recent tokens, as long as the layer is not yet
	// compressed: token p's [Heads][HeadDim] row is at slot p mod Window.
	queries []float32
	qTail   int // how many of the most recent tokens have their query stored

	// H2O's attention accumulated over every prompt query, per KV head
	// (summed over the group), while the layer is not yet compressed.
	heavy        [][]float32
	heavyMissing bool // some prompt tokens came without queries

	// Set by Compress for layers that take part in the budget split.
	ranked  bool
	prompt  int         // n: the tokens the layer had when it was scored
	stats   layerScores // its entropy and CAKE statistics (scores dropped)
	budget  int         // b_l: per-head budget for prefix tokens
	winners []scored    // the layer's joint top-k, best first, for re-trimming
	limit   int         // entries per head decode eviction holds, 0 for none
}

// head is the storage of one KV head of one layer. Entries are in position
// order; the first len(order) are ranked prompt tokens that a later Compress
// of the cascade may still evict, the rest (window and decode tokens) stay.
type head struct {
	k, v     []float32 // Float32 storage: rows of HeadDim
	k16, v16 []uint16  // Float16 storage: rows of HeadDim
	pos      []int32
	// order lists the rows of the ranked prompt tokens best first, so that
	// re-trimming to a smaller budget keeps a prefix of it without sorting.
	order []int32
}

func (h *head) len() int { return len(h.pos) }

// HeadView is the content of one KV head of one layer. Keys and Values (or
// Keys16 and Values16 with Float16 storage, as IEEE binary16 bits) hold
// Len rows of HeadDim elements and alias the cache's storage: they are
// valid until the next Append, Compress or Reset, and must not be modified.
type HeadView struct {
	Keys, Values     []float32
	Keys16, Values16 []uint16
	// Positions are the entries' original token positions, increasing.
	Positions []int32
}

// Len is the number of entries in the view.
func (v HeadView) Len() int { return len(v.Positions) }

// New returns an empty cache for the model and compression settings in cfg,
// or an error naming the first invalid field.
func New(cfg Config) (*KVCache, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	g := cfg.Heads / cfg.KVHeads
	c := &KVCache{cfg: cfg, group: g, layers: make([]layer, cfg.Layers), attnInv: make([]float32, g)}
	for l := range c.layers {
		c.layers[l].heads = make([]head, cfg.KVHeads)
	}
	return c, nil
}

// Config returns the cache's configuration with defaults filled in.
func (c *KVCache) Config() Config { return c.cfg }

// Append adds tokens to one layer: a prompt chunk during prefill or one token
// per decode step. k and v hold [tokens][KVHeads][HeadDim] values (post-RoPE
// keys, raw values); q holds the same tokens' post-RoPE queries,
// [tokens][Heads][HeadDim], or is nil where nothing needs them (decode steps,
// or prompt tokens that are not among the last Window). Before a layer's
// first Compress its Appends form the prompt; after it they are decode
// tokens, which are never evicted. The new entries take positions counting
// on from the number of tokens ever appended to the layer.
//
// On error the cache is unchanged.
func (c *KVCache) Append(layer int, q, k, v []float32) error {
	if layer < 0 || layer >= len(c.layers) {
		return invalidf("Append: layer = %d, want 0 ≤ layer < %d", layer, len(c.layers))
	}
	d, row := c.cfg.HeadDim, c.cfg.KVHeads*c.cfg.HeadDim
	if len(k) == 0 || len(k)%row != 0 {
		return invalidf("Append: len(k) = %d, want a positive multiple of KVHeads·HeadDim = %d", len(k), row)
	}
	if len(v) != len(k) {
		return invalidf("Append: len(v) = %d, want len(k) = %d", len(v), len(k))
	}
	t := len(k) / row
	qrow := c.cfg.Heads * d
	if q != nil && len(q) != t*qrow {
		return invalidf("Append: len(q) = %d, want tokens·Heads·HeadDim = %d (or nil)", len(q), t*qrow)
	}
	L := &c.layers[layer]
	if L.tokens+t > math.MaxInt32 {
		return invalidf("Append: layer %d would exceed %d tokens", layer, math.MaxInt32)
	}
	for kv := range L.heads {
		h := &L.heads[kv]
		if c.cfg.Element == Float16 {
			h.k16 = appendRowsF16(h.k16, k, kv*d, row, d, t)
			h.v16 = appendRowsF16(h.v16, v, kv*d, row, d, t)
		} else {
			h.k = appendRows(h.k, k, kv*d, row, d, t)
			h.v = appendRows(h.v, v, kv*d, row, d, t)
		}
		h.pos = growBy(h.pos, t)
		for i := range t {
			h.pos = append(h.pos, int32(L.tokens+i))
		}
	}
	if L.state != layerCompressed {
		L.state = layerPending
		c.keepQueries(L, q, t)
		if c.cfg.Policy.kind == kindH2O {
			c.accumulateHeavy(L, q, t)
		}
	}
	L.tokens += t
	if L.limit > 0 {
		c.evictOldest(L)
	}
	return nil
}

// growBy makes room for n more elements in one allocation, growing by at
// least half the capacity so that a prompt appended in many chunks is
// copied O(1) times, not once per chunk.
func growBy[T any](s []T, n int) []T {
	if cap(s)-len(s) >= n {
		return s
	}
	return slices.Grow(s, max(n, cap(s)/2))
}

// appendRows appends t rows of d elements, taken every stride elements of
// src starting at off.
func appendRows(dst, src []float32, off, stride, d, t int) []float32 {
	dst = growBy(dst, t*d)
	for i := range t {
		dst = append(dst, src[off+i*stride:off+i*stride+d]...)
	}
	return dst
}

func appendRowsF16(dst []uint16, src []float32, off, stride, d, t int) []uint16 {
	n := len(dst)
	dst = growBy(dst, t*d)[:n+t*d]
	for i := range t {
		narrowF16(dst[n+i*d:n+(i+1)*d], src[off+i*stride:off+i*stride+d])
	}
	return dst
}

// keepQueries stores the queries of the last Window of the t tokens being
// appended to L, or records that they are missing.
func (c *KVCache) keepQueries(L *layer, q []float32, t int) {
	w, row := c.cfg.Window, c.cfg.Heads*c.cfg.HeadDim
	if q == nil {
		L.qTail = 0
		return
	}
	if L.queries == nil {
		L.queries = make([]float32, w*row)
	}
	for i := max(0, t-w); i < t; i++ {
		slot := (L.tokens + i) % w
		copy(L.queries[slot*row:(slot+1)*row], q[i*row:(i+1)*row])
	}
	L.qTail = min(w, L.qTail+t)
}

// View returns the entries one KV head of one layer holds.
func (c *KVCache) View(layer, kvHead int) (HeadView, error) {
	if layer < 0 || layer >= len(c.layers) {
		return HeadView{}, invalidf("View: layer = %d, want 0 ≤ layer < %d", layer, len(c.layers))
	}
	if kvHead < 0 || kvHead >= c.cfg.KVHeads {
		return HeadView{}, invalidf("View: kvHead = %d, want 0 ≤ kvHead < %d", kvHead, c.cfg.KVHeads)
	}
	h := &c.layers[layer].heads[kvHead]
	return HeadView{Keys: h.k, Values: h.v, Keys16: h.k16, Values16: h.v16, Positions: h.pos}, nil
}

// Len returns the number of entries one KV head of one layer holds, or 0 for
// indices out of range.
func (c *KVCache) Len(layer, kvHead int) int {
	if layer < 0 || layer >= len(c.layers) || kvHead < 0 || kvHead >= c.cfg.KVHeads {
		return 0
	}
	return c.layers[layer].heads[kvHead].len()
}

// Tokens returns the number of tokens ever appended to a layer, which is the
// position the next one takes, or 0 for a layer out of range.
func (c *KVCache) Tokens(layer int) int {
	if layer < 0 || layer >= len(c.layers) {
		return 0
	}
	return c.layers[layer].tokens
}

// Bytes returns the bytes of keys and values the cache holds: entries ×
// 2 × HeadDim × element size, over all layers and heads.
func (c *KVCache) Bytes() int64 {
	var n int64
	for l := range c.layers {
		for _, h := range c.layers[l].heads {
			n += int64(h.len())
		}
	}
	return n * c.EntryBytes()
}

// EntryBytes returns the bytes one entry (a key and a value of one KV head)
// takes: 2 × HeadDim × the element size. A full cache of n tokens holds
// n × Layers × KVHeads × EntryBytes.
func (c *KVCache) EntryBytes() int64 { return int64(2 * c.cfg.HeadDim * c.cfg.Element.size()) }

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
	kind := c.cfg.Policy.kind
	// TOVA and CAKE keep uniform heads (TOVA one shared set), so every head
	// has head 0's length and one test decides for all.
	evict := L.limit > 0 && (kind == kindTOVA || kind == kindCAKE) && L.heads[0].len() > L.limit
	heads := float32(c.cfg.Heads) // TOVA averages over the layer's query heads
	if kind == kindCAKE {
		heads = float32(g) // CAKE over the group of each KV head
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
		if c.cfg.Element == Float16 {
			scoreBlockF16(qs, h.k16, d, scale, p)
		} else {
			scoreBlock(qs, h.k, d, scale, p)
		}
		es := c.evictScore[:n]
		if evict && (kind == kindCAKE || kv == 0) {
			clear(es)
		}
		// Unnormalised softmax rows; each output row is scaled once after.
		for i := range g {
			row := p[i*n : (i+1)*n]
			c.attnInv[i] = 1 / expSub(row, maxOf(row))
			if evict { // CAKE: the group's mean; TOVA: the layer's
				axpy(c.attnInv[i]/heads, row, es)
			}
		}
		if c.cfg.Element == Float16 {
			weightedSumsF16(p, h.v16, outs, d)
		} else {
			weightedSums(p, h.v, outs, d)
		}
		for i := range g {
			o, inv := outs[i*d:(i+1)*d], c.attnInv[i]
			for t := range o {
				o[t] *= inv
			}
		}
		if evict && kind == kindCAKE {
			// The most recent Window entries are CAKE's window, kept.
			removeRow(h, argmin(es[:max(n-c.cfg.Window, 1)]), d)
		}
	}
	if evict && kind == kindTOVA {
		// Heads share one kept set, so one row goes from every head.
		r := argmin(c.evictScore[:L.heads[0].len()])
		for kv := range L.heads {
			removeRow(&L.heads[kv], r, d)
		}
	}
	return nil
}
