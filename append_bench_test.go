package lava

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkAppend appends a 4096-token prompt in chunks of 512 to one layer
// of the Llama-3-8B shape (8 KV heads of 128), into storage kept by Reset,
// so it measures the copy (and its validation), not allocation. SetBytes is
// the key and value input read.
func BenchmarkAppend(b *testing.B) {
	for _, el := range []Element{Float32, Float16} {
		b.Run(fmt.Sprintf("elem=%v", el), func(b *testing.B) {
			cfg := Config{Layers: 1, Heads: 32, KVHeads: 8, HeadDim: 128, Budget: 512, KeyElement: el, ValueElement: el}
			const n, chunk = 4096, 512
			rng := rand.New(rand.NewPCG(1, 1))
			k := make([]float32, n*cfg.KVHeads*cfg.HeadDim)
			for i := range k {
				k[i] = float32(rng.NormFloat64())
			}
			c := newCache(b, cfg)
			row := cfg.KVHeads * cfg.HeadDim
			fill := func() {
				c.Reset()
				for lo := 0; lo < n; lo += chunk {
					if err := c.Append(0, nil, k[lo*row:(lo+chunk)*row], k[lo*row:(lo+chunk)*row]); err != nil {
						b.Fatal(err)
					}
				}
			}
			fill()
			b.SetBytes(int64(2 * 4 * len(k)))
			b.ReportAllocs()
			for b.Loop() {
				fill()
			}
		})
	}
}
