package lava

// Scorer ranks the prefix tokens of one KV head of one layer for a Custom
// policy. Higher scores are kept first; ties go to the lower index.
// Compress calls Score from one goroutine at a time, whatever
// Config.Workers is.
type Scorer interface {
	// Score writes the score of prefix token i to out[i], i < len(out).
	// in is valid only during the call.
	Score(in ScoreInput, out []float32)
}

// ScoreInput is what a Scorer sees of one KV head of one layer: the keys and
// values it holds and the window's attention to them, all as float32
// (widened from float16 storage). Keys and Values may alias the cache's
// storage and must not be modified.
type ScoreInput struct {
	Layer, KVHead int
	HeadDim       int
	// Keys and Values hold the head's n held entries, [n][HeadDim]; the
	// first len(out) are the candidates to score, the rest the window.
	Keys, Values []float32
	// Positions are the tokens' original positions.
	Positions []int32
	// Queries holds the window's queries of each query head of the group,
	// [group][Window][HeadDim].
	Queries []float32
	// Attention holds each query head's window-mean attention to the
	// candidates, [group][len(out)] (before pooling).
	Attention []float32
}

// scoreCustom fills every head's scores with the Custom policy's Scorer.
func scoreCustom(s *scratch, L *layer, l int, out *layerScores) {
	c := s.c
	d, g := c.cfg.HeadDim, c.group
	for kv := range L.heads {
		h := &L.heads[kv]
		in := ScoreInput{Layer: l, KVHead: kv, HeadDim: d, Positions: h.pos, Keys: h.k.float32s(d), Values: h.v.float32s(d)}
		in.Queries = make([]float32, 0, g*s.w*d)
		in.Attention = make([]float32, 0, g*s.cand[kv])
		for qh := kv * g; qh < (kv+1)*g; qh++ {
			in.Attention = append(in.Attention, s.windowAttention(L, qh)...)
			in.Queries = append(in.Queries, s.qblk...)
		}
		c.cfg.Policy.scorer.Score(in, s.headScores(out, kv))
	}
}
