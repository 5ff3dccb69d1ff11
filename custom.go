package lava

// Scorer ranks the prefix tokens of one KV head of one layer for a Custom
// policy. Higher scores are kept first; ties go to the lower index.
type Scorer interface {
	// Score writes the score of prefix token i to out[i], i < len(out).
	// in is valid only during the call.
	Score(in ScoreInput, out []float32)
}

// ScoreInput is what a Scorer sees of one KV head of one layer: the prompt's
// keys and values and the observation window's attention, all as float32
// (widened from float16 storage). Keys and Values may alias the cache's
// storage and must not be modified.
type ScoreInput struct {
	Layer, KVHead int
	HeadDim       int
	// Keys and Values hold the head's n prompt tokens, [n][HeadDim]; the
	// first len(out) are the prefix to score, the rest the window.
	Keys, Values []float32
	// Positions are the tokens' original positions.
	Positions []int32
	// Queries holds the window's queries of each query head of the group,
	// [group][Window][HeadDim].
	Queries []float32
	// Attention holds each query head's window-mean attention to the
	// prefix tokens, [group][len(out)] (spec section 2, before pooling).
	Attention []float32
}

// custom fills sk with the Custom policy's scores of head kv of layer l.
func (s *scorer) custom(l, kv, m, w int, sk []float32) {
	c := s.c
	L := &c.layers[l]
	h := &L.heads[kv]
	d, g := c.cfg.HeadDim, c.group
	in := ScoreInput{Layer: l, KVHead: kv, HeadDim: d, Positions: h.pos, Keys: h.k, Values: h.v}
	if c.cfg.Element == Float16 {
		in.Keys, in.Values = make([]float32, len(h.k16)), make([]float32, len(h.v16))
		widenF16(in.Keys, h.k16)
		widenF16(in.Values, h.v16)
	}
	in.Queries = make([]float32, 0, g*w*d)
	in.Attention = make([]float32, 0, g*m)
	for qh := kv * g; qh < (kv+1)*g; qh++ {
		in.Attention = append(in.Attention, s.windowAttention(L, qh, w)...)
		in.Queries = append(in.Queries, s.qblk...)
	}
	c.cfg.Policy.scorer.Score(in, sk)
}
