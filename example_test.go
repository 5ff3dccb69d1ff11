package lava_test

import (
	"errors"
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

// A long prompt prefilled in chunks, each chunk attended with the
// multi-token Attend and then compressed, never holds much more than the
// budget; decoding with slack keeps it there.
func ExampleKVCache_Compress_streaming() {
	cfg := lava.Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Budget: 24, Window: 8, DecodeSlack: 8}
	cache, err := lava.New(cfg)
	if err != nil {
		panic(err)
	}
	const prompt, chunk = 400, 50
	peak := int64(0)
	for lo := 0; lo < prompt; lo += chunk {
		for l := range cfg.Layers {
			q := fakeLayer(l, chunk, cfg.Heads, cfg.HeadDim, float64(lo))
			k := fakeLayer(l, chunk, cfg.KVHeads, cfg.HeadDim, float64(lo)+1)
			out := make([]float32, len(q))
			if err := cache.Append(l, nil, k, k); err != nil {
				panic(err)
			}
			peak = max(peak, cache.Bytes())
			// Attend keeps q for scoring; with DecodeSlack it also
			// compresses once every layer has attended its tokens.
			if err := cache.Attend(l, q, out); err != nil {
				panic(err)
			}
		}
		if _, err := cache.Compress(); err != nil {
			panic(err)
		}
	}
	fmt.Println("prompt of", prompt, "tokens: peak", peak, "bytes, now", cache.Bytes(), "bytes; full would be", int64(prompt)*int64(cfg.Layers*cfg.KVHeads)*cache.EntryBytes())
	for step := range 100 { // decode: Attend compresses every ~8 tokens
		for l := range cfg.Layers {
			q := fakeLayer(l, 1, cfg.Heads, cfg.HeadDim, float64(1000+step))
			k := fakeLayer(l, 1, cfg.KVHeads, cfg.HeadDim, float64(2000+step))
			if err := cache.Append(l, nil, k, k); err != nil {
				panic(err)
			}
			if err := cache.Attend(l, q, make([]float32, len(q))); err != nil {
				panic(err)
			}
		}
	}
	fmt.Println("after 100 decode steps:", cache.Tokens(0), "tokens,", cache.Bytes(), "bytes held")
	// Output:
	// prompt of 400 tokens: peak 18816 bytes, now 6016 bytes; full would be 102400
	// after 100 decode steps: 500 tokens, 6272 bytes held
}

// Speculative decoding: draft tokens are appended and attended, the
// rejected ones are dropped with Truncate.
func ExampleKVCache_Truncate() {
	cfg := lava.Config{Layers: 1, Heads: 4, KVHeads: 2, HeadDim: 8, Budget: 24, Window: 8}
	cache, _ := lava.New(cfg)
	prefillLayer(cache, 0)
	draft := fakeLayer(0, 4, cfg.KVHeads, cfg.HeadDim, 5) // 4 draft tokens
	if err := cache.Append(0, nil, draft, draft); err != nil {
		panic(err)
	}
	fmt.Println("with the draft:", cache.Tokens(0), "tokens")
	if err := cache.Truncate(202); err != nil { // the first two were accepted
		panic(err)
	}
	n, err := cache.CommonTokens()
	fmt.Println("after Truncate:", n, err)
	// Output:
	// with the draft: 204 tokens
	// after Truncate: 202 <nil>
}

// A compressed cache saved and restored, as for prefix reuse across
// processes or a session file.
func ExampleKVCache_MarshalBinary() {
	cfg := lava.Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Budget: 24, Window: 8}
	cache, _ := lava.New(cfg)
	for l := range cfg.Layers {
		prefillLayer(cache, l)
	}
	if _, err := cache.Compress(); err != nil {
		panic(err)
	}
	data, err := cache.MarshalBinary()
	if err != nil {
		panic(err)
	}
	var restored lava.KVCache
	if err := restored.UnmarshalBinary(data); err != nil {
		panic(err)
	}
	a, _ := cache.View(1, 0)
	b, _ := restored.View(1, 0)
	fmt.Println(len(data), "bytes; same positions:", fmt.Sprint(a.Positions) == fmt.Sprint(b.Positions))
	// Output:
	// 12039 bytes; same positions: true
}

// Reset empties a cache for the next sequence and keeps its storage;
// AppendKeys reads rows as float32 whatever the storage type.
func ExampleKVCache_Reset() {
	cfg := lava.Config{Layers: 1, Heads: 4, KVHeads: 2, HeadDim: 8, Budget: 24, Window: 8, KeyElement: lava.Float16, ValueElement: lava.Float16}
	cache, _ := lava.New(cfg)
	prefillLayer(cache, 0)
	view, _ := cache.View(0, 0)
	keys := view.AppendKeys(nil) // widened from float16
	fmt.Printf("%d entries, first key %.3f; %d bytes held, %d allocated\n", view.Len(), keys[0], cache.Bytes(), cache.AllocatedBytes())
	cache.Reset()
	fmt.Println("after Reset:", cache.Tokens(0), "tokens,", cache.Bytes(), "bytes held")
	// Output:
	// 200 entries, first key 1.683; 12800 bytes held, 17032 allocated
	// after Reset: 0 tokens, 0 bytes held
}

// Append checks what it stores: a NaN (or an infinity, or with float16
// storage a value beyond its range) is refused with the layer, token, head
// and element named, and the cache is left as it was.
func ExampleKVCache_Append_validation() {
	cfg := lava.Config{Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 4, Budget: 24, Window: 8, KeyElement: lava.Float16, ValueElement: lava.Float16}
	cache, _ := lava.New(cfg)
	k := []float32{0.5, 1, 70000, 2} // 70000 is beyond float16's largest finite value
	err := cache.Append(0, nil, k, k)
	fmt.Println(errors.Is(err, lava.ErrInvalid), cache.Tokens(0))
	fmt.Println(err)
	// Output:
	// true 0
	// lava: invalid input: Append: layer 0, token 0 (position 0), KV head 0: key element 2 is 70000, want a finite value within float16 range
}

// Config.AttentionScale replaces 1/√HeadDim for models that scale
// query·key products otherwise.
func ExampleConfig_attentionScale() {
	cfg := lava.Config{Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 4, Budget: 24, Window: 8, AttentionScale: 0.125}
	cache, _ := lava.New(cfg)
	fmt.Println(cache.Config().AttentionScale)
	def, _ := lava.New(lava.Config{Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 4, Budget: 24, Window: 8})
	fmt.Println(def.Config().AttentionScale) // 1/√4
	// Output:
	// 0.125
	// 0.5
}

// Each storage type's bytes per entry (a key row and a value row of one
// KV head), measured from what a cache holding 1000 tokens reports, at
// Llama's head dimension 128 and stories260K's 8.
func Example_storageBytes() {
	for _, d := range []int{128, 8} {
		for _, kv := range [][2]lava.Element{
			{lava.Float32, lava.Float32}, {lava.Float16, lava.Float16},
			{lava.Q8_0, lava.Q8_0}, {lava.Q4_0, lava.Q4_0}, {lava.Q8_0, lava.Q4_0},
		} {
			cfg := lava.Config{Layers: 1, Heads: 1, KVHeads: 1, HeadDim: d, Budget: 2000, KeyElement: kv[0], ValueElement: kv[1]}
			c, err := lava.New(cfg)
			if err != nil {
				panic(err)
			}
			x := make([]float32, 1000*d)
			for i := range x {
				x[i] = float32(i%7) - 3
			}
			if err := c.Append(0, nil, x, x); err != nil {
				panic(err)
			}
			per := c.Bytes() / 1000
			fmt.Printf("d=%d K %v, V %v: %d bytes per entry, %.1f%% of float32\n", d, kv[0], kv[1], per, 100*float64(per)/float64(8*d))
		}
	}
	// Output:
	// d=128 K float32, V float32: 1024 bytes per entry, 100.0% of float32
	// d=128 K float16, V float16: 512 bytes per entry, 50.0% of float32
	// d=128 K q8_0, V q8_0: 272 bytes per entry, 26.6% of float32
	// d=128 K q4_0, V q4_0: 144 bytes per entry, 14.1% of float32
	// d=128 K q8_0, V q4_0: 208 bytes per entry, 20.3% of float32
	// d=8 K float32, V float32: 64 bytes per entry, 100.0% of float32
	// d=8 K float16, V float16: 32 bytes per entry, 50.0% of float32
	// d=8 K q8_0, V q8_0: 20 bytes per entry, 31.2% of float32
	// d=8 K q4_0, V q4_0: 12 bytes per entry, 18.8% of float32
	// d=8 K q8_0, V q4_0: 16 bytes per entry, 25.0% of float32
}
