package lava

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkDecode is one decode step of a Llama-3-8B-shaped model's
// attention (32 layers, 32 query heads, 8 KV heads, head dim 128) after a
// 4096-token prompt: for every layer, Append the new token's key and value,
// then Attend. It compares the full cache with LAVa at B = 512, which is
// what compression buys at decode time, on one goroutine and on two
// (Workers; Attend shares each layer's KV heads). ns/op is per generated
// token.
func BenchmarkDecode(b *testing.B) {
	const n = 4096
	for _, tc := range []struct {
		name   string
		budget int
	}{{"full", n + 1}, {"lava-B=512", 512}, {"lava-B=64", 64}} {
		for _, workers := range []int{1, 2} {
			benchDecode(b, n, tc.name, workers, Config{Layers: 32, Heads: 32, KVHeads: 8, HeadDim: 128, Budget: tc.budget, DecodeReserve: 1 << 12, Workers: workers})
		}
	}
}

func benchDecode(b *testing.B, n int, name string, workers int, cfg Config) {
	b.Run(fmt.Sprintf("n=%d/cache=%s/workers=%d", n, name, workers), func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 1))
		kv := make([]float32, n*cfg.KVHeads*cfg.HeadDim)
		for i := range kv {
			kv[i] = float32(rng.NormFloat64())
		}
		q := make([]float32, 32*cfg.Heads*cfg.HeadDim)
		for i := range q {
			q[i] = float32(rng.NormFloat64())
		}
		c, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		split := (n - 32) * cfg.KVHeads * cfg.HeadDim
		for l := range cfg.Layers {
			if err := c.Append(l, nil, kv[:split], kv[:split]); err != nil {
				b.Fatal(err)
			}
			if err := c.Append(l, q, kv[split:], kv[split:]); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Compress(); err != nil {
				b.Fatal(err)
			}
		}
		qt := q[:cfg.Heads*cfg.HeadDim]
		kt := kv[:cfg.KVHeads*cfg.HeadDim]
		out := make([]float32, len(qt))
		step := func() {
			for l := range cfg.Layers {
				if err := c.Append(l, nil, kt, kt); err != nil {
					b.Fatal(err)
				}
				if err := c.Attend(l, qt, out); err != nil {
					b.Fatal(err)
				}
			}
		}
		step() // sizes Attend's scratch and grows the full cache's position lists once
		b.ReportAllocs()
		for b.Loop() {
			step()
		}
		b.ReportMetric(float64(c.Bytes())/(1<<20), "cache-MiB")
	})
}
