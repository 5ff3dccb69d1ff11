package lava

import "math"

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
	// over one KV head, attnInv their softmax denominators' inverses,
	// evictScore the attention decode eviction ranks by, and groupQ the
	// queries and outputs of one group for several tokens.
	attn, attnInv, evictScore, groupQ []float32
	// evictDrop and evictKeep are the scratch of decode eviction.
	evictDrop []bool
	evictKeep []int32
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
	// (summed over the group), while the layer is not yet compressed. It
	// covers the first len(heavy[kv]) entries: fewer than the head holds
	// when some Append came without queries.
	heavy [][]float32

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
	k, v rows // rows of HeadDim
	pos  []int32
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
		for kv := range c.layers[l].heads {
			h := &c.layers[l].heads[kv]
			h.k, h.v = newRows(cfg.Element), newRows(cfg.Element)
		}
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
		h.k.append(k, kv*d, row, d, t)
		h.v.append(v, kv*d, row, d, t)
		h.pos = growBy(h.pos, t)
		for i := range t {
			h.pos = append(h.pos, int32(L.tokens+i))
		}
	}
	if L.state != layerCompressed {
		L.state = layerPending
		c.keepQueries(L, q, t)
		if c.cfg.Policy.accumulates {
			c.accumulateHeavy(L, q, t)
		}
	}
	L.tokens += t
	if L.limit > 0 && c.cfg.Policy.decode == decodeOldest {
		c.evictOldest(L)
	}
	return nil
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
	v := HeadView{Positions: h.pos}
	v.Keys, v.Keys16 = h.k.raw()
	v.Values, v.Values16 = h.v.raw()
	return v, nil
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
func (c *KVCache) EntryBytes() int64 { return int64(2 * c.cfg.Element.rowBytes(c.cfg.HeadDim)) }
