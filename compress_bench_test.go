package lava

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkCompress prefills and compresses a Llama-3-8B-shaped cache (32
// layers, 32 query heads, 8 KV heads, head dim 128) with a 4096-token prompt
// to B = 512, compressing after each layer as an engine does during prefill.
// Every layer gets the same random data, so the cost is that of the real
// shape without 1 GB of test data. ns/token is per prompt token, for Append
// and Compress together; compress-ns/token counts Compress alone.
func BenchmarkCompress(b *testing.B) {
	for _, el := range []Element{Float32, Float16} {
		cfg := Config{Layers: 32, Heads: 32, KVHeads: 8, HeadDim: 128, Budget: 512, KeyElement: el, ValueElement: el}
		b.Run(fmt.Sprintf("n=%d/B=%d/elem=%v", benchPrompt, cfg.Budget, el), func(b *testing.B) { benchCompress(b, cfg) })
	}
}

// BenchmarkCompressWorkers is BenchmarkCompress (float32) with
// Config.Workers = 1 and 2, to compare one goroutine against two:
//
//	go test -run '^$' -bench 'Compress.*Workers' -count 6 .
func BenchmarkCompressWorkers(b *testing.B) {
	for _, workers := range []int{1, 2} {
		cfg := Config{Layers: 32, Heads: 32, KVHeads: 8, HeadDim: 128, Budget: 512, Workers: workers}
		b.Run(fmt.Sprintf("n=%d/B=%d/elem=%v/workers=%d", benchPrompt, cfg.Budget, cfg.KeyElement, workers), func(b *testing.B) { benchCompress(b, cfg) })
	}
}

// benchPrompt is the prompt length of the Compress benchmarks.
const benchPrompt = 4096

// benchCompress prefills a cache of cfg with a benchPrompt-token prompt,
// compressing after each layer.
func benchCompress(b *testing.B, cfg Config) {
	const n = benchPrompt
	p := newBenchPrompt(cfg, n)
	b.ReportAllocs()
	var compress time.Duration // in Compress alone, without Append's copying
	for b.Loop() {
		compress += p.run(b, cfg, true)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/token")
	b.ReportMetric(float64(compress.Nanoseconds())/float64(b.N)/n, "compress-ns/token")
}
