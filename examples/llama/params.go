package llama

import (
	"fmt"
	"math"

	"github.com/lavakv/lava/examples/gguf"
)

// Params are the hyperparameters of a Llama-family model, from the
// metadata keys "<arch>.…" of its GGUF file.
type Params struct {
	Arch          string  // general.architecture, e.g. "llama"
	Layers        int     // block_count
	Heads         int     // attention.head_count
	KVHeads       int     // attention.head_count_kv (default: Heads)
	Dim           int     // embedding_length
	FFN           int     // feed_forward_length
	RopeDim       int     // rope.dimension_count (default: Dim/Heads)
	RopeBase      float64 // rope.freq_base (default 10000)
	RMSEps        float64 // attention.layer_norm_rms_epsilon
	ContextLength int     // context_length, as the file declares it
}

// maxHyper bounds integer hyperparameters: anything larger is a corrupt
// file, and the bound keeps products of them far from overflowing.
const maxHyper = 1 << 24

// readParams reads the hyperparameters from f's metadata and checks that
// they are consistent.
func readParams(f *gguf.File) (Params, error) {
	var p Params
	var err error
	if p.Arch, err = f.String("general.architecture"); err != nil {
		return p, err
	}
	key := func(k string) string { return p.Arch + "." + k }
	ints := []struct {
		dst      *int
		key      string
		optional bool
	}{
		{&p.Layers, key("block_count"), false},
		{&p.Heads, key("attention.head_count"), false},
		{&p.KVHeads, key("attention.head_count_kv"), true},
		{&p.Dim, key("embedding_length"), false},
		{&p.FFN, key("feed_forward_length"), false},
		{&p.RopeDim, key("rope.dimension_count"), true},
		{&p.ContextLength, key("context_length"), true},
	}
	for _, e := range ints {
		if _, ok := f.Value(e.key); !ok && e.optional {
			continue
		}
		n, err := f.Uint(e.key)
		if err != nil {
			return p, err
		}
		if n < 1 || n > maxHyper {
			return p, fmt.Errorf("llama: metadata %q = %d, want 1 to %d", e.key, n, maxHyper)
		}
		*e.dst = int(n)
	}
	if p.KVHeads == 0 {
		p.KVHeads = p.Heads
	}
	if p.Dim%p.Heads != 0 {
		return p, fmt.Errorf("llama: %s = %d is not a multiple of %s = %d", key("embedding_length"), p.Dim, key("attention.head_count"), p.Heads)
	}
	if p.Heads%p.KVHeads != 0 {
		return p, fmt.Errorf("llama: %s = %d is not a multiple of %s = %d", key("attention.head_count"), p.Heads, key("attention.head_count_kv"), p.KVHeads)
	}
	headDim := p.Dim / p.Heads
	if p.RopeDim == 0 {
		p.RopeDim = headDim
	}
	if p.RopeDim > headDim || p.RopeDim%2 != 0 {
		return p, fmt.Errorf("llama: %s = %d, want an even number ≤ the head dimension %d", key("rope.dimension_count"), p.RopeDim, headDim)
	}
	p.RopeBase = 10000
	if _, ok := f.Value(key("rope.freq_base")); ok {
		if p.RopeBase, err = f.Float(key("rope.freq_base")); err != nil {
			return p, err
		}
	}
	if p.RMSEps, err = f.Float(key("attention.layer_norm_rms_epsilon")); err != nil {
		return p, err
	}
	if !(p.RopeBase > 1) || math.IsInf(p.RopeBase, 0) {
		return p, fmt.Errorf("llama: %s = %v, want a finite number > 1", key("rope.freq_base"), p.RopeBase)
	}
	if !(p.RMSEps > 0 && p.RMSEps < 1) {
		return p, fmt.Errorf("llama: %s = %v, want a number in (0, 1)", key("attention.layer_norm_rms_epsilon"), p.RMSEps)
	}
	return p, nil
}

// shapeSummary names the hyperparameters that set the tensors' shapes, for
// errors about a shape.
func (p *Params) shapeSummary() string {
	return fmt.Sprintf("%[1]s.embedding_length = %[2]d, %[1]s.attention.head_count = %[3]d, %[1]s.attention.head_count_kv = %[4]d, %[1]s.feed_forward_length = %[5]d",
		p.Arch, p.Dim, p.Heads, p.KVHeads, p.FFN)
}
