package lava_test

import (
	"fmt"
	"math"

	"github.com/lavakv/lava"
)

// fakeLayer returns tokens × heads × dim values that a model's projections
// might produce: deterministic and different for every layer.
func fakeLayer(layer, tokens, heads, dim int, salt float64) []float32 {
	x := make([]float32, tokens*heads*dim)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*0.7+float64(layer)*1.3+salt) * 2)
	}
	return x
}

// prefillLayer appends the same 200-token prompt as Example to layer l.
func prefillLayer(cache *lava.KVCache, l int) {
	cfg := cache.Config()
	q := fakeLayer(l, 200, cfg.Heads, cfg.HeadDim, 0)
	k := fakeLayer(l, 200, cfg.KVHeads, cfg.HeadDim, 1)
	v := fakeLayer(l, 200, cfg.KVHeads, cfg.HeadDim, 2)
	if err := cache.Append(l, q, k, v); err != nil {
		panic(err)
	}
}

// A prompt of 200 tokens is appended to every layer, compressed to an
// average of 24 entries per KV head, and decoding continues over the
// compressed cache.
func Example() {
	cfg := lava.Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Budget: 24, Window: 8}
	cache, err := lava.New(cfg)
	if err != nil {
		panic(err)
	}
	const prompt = 200
	for l := range cfg.Layers {
		q := fakeLayer(l, prompt, cfg.Heads, cfg.HeadDim, 0)
		k := fakeLayer(l, prompt, cfg.KVHeads, cfg.HeadDim, 1)
		v := fakeLayer(l, prompt, cfg.KVHeads, cfg.HeadDim, 2)
		if err := cache.Append(l, q, k, v); err != nil {
			panic(err)
		}
	}
	report, err := cache.Compress()
	if err != nil {
		panic(err)
	}
	fmt.Printf("bytes: %d -> %d\n", report.BytesBefore, report.BytesAfter)
	for l, lr := range report.Layers {
		fmt.Printf("layer %d: budget %d prefix entries per head, kept per head %v\n", l, lr.Budget, lr.Kept)
	}

	// One decode step: append the new token's key and value, then attend.
	q := fakeLayer(0, 1, cfg.Heads, cfg.HeadDim, 3)
	kv := fakeLayer(0, 1, cfg.KVHeads, cfg.HeadDim, 4)
	out := make([]float32, len(q))
	if err := cache.Append(0, nil, kv, kv); err != nil {
		panic(err)
	}
	if err := cache.Attend(0, q, out); err != nil {
		panic(err)
	}
	view, _ := cache.View(0, 0)
	fmt.Println("layer 0 head 0 holds", view.Len(), "entries; the newest is at position", view.Positions[view.Len()-1])
	// Output:
	// bytes: 51200 -> 6016
	// layer 0: budget 16 prefix entries per head, kept per head [8 40]
	// layer 1: budget 15 prefix entries per head, kept per head [38 8]
	// layer 0 head 0 holds 9 entries; the newest is at position 200
}

// Compressing after each layer's prompt (the cascade) never holds the full
// cache of all layers, and ends with the same kept entries as compressing
// once at the end.
func ExampleKVCache_Compress_cascade() {
	cfg := lava.Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Budget: 24, Window: 8}
	cache, err := lava.New(cfg)
	if err != nil {
		panic(err)
	}
	for l := range cfg.Layers {
		prefillLayer(cache, l)
		report, err := cache.Compress()
		if err != nil {
			panic(err)
		}
		fmt.Printf("after layer %d: %d bytes held, budgets", l, report.BytesAfter)
		for _, lr := range report.Layers[:l+1] {
			fmt.Print(" ", lr.Budget)
		}
		fmt.Println()
	}
	// Output:
	// after layer 0: 5120 bytes held, budgets 32
	// after layer 1: 6016 bytes held, budgets 16 15
}

// keyNorm is a Scorer that keeps the tokens whose keys have the smallest L2
// norm, a query-free heuristic (Devoto et al., arXiv 2406.11430).
type keyNorm struct{}

func (keyNorm) Score(in lava.ScoreInput, out []float32) {
	for i := range out {
		var s float32
		for _, x := range in.Keys[i*in.HeadDim : (i+1)*in.HeadDim] {
			s += x * x
		}
		out[i] = -s // higher scores are kept
	}
}

// A custom per-token score reuses lava's budget split, ranking and
// compaction: here uniform layer budgets and one joint ranking per layer.
func ExampleCustom() {
	cfg := lava.Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Budget: 24, Window: 8,
		Policy: lava.Custom("key-norm", keyNorm{}, lava.UniformLayers, lava.JointHeads)}
	cache, err := lava.New(cfg)
	if err != nil {
		panic(err)
	}
	for l := range cfg.Layers {
		prefillLayer(cache, l)
	}
	report, err := cache.Compress()
	if err != nil {
		panic(err)
	}
	for l, lr := range report.Layers {
		fmt.Printf("%s layer %d: kept per head %v\n", cfg.Policy.Name(), l, lr.Kept)
	}
	// Output:
	// key-norm layer 0: kept per head [24 24]
	// key-norm layer 1: kept per head [24 24]
}
