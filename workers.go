package lava

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// This file spreads Compress and multi-token Attend over Config.Workers
// goroutines. The work is cut into units that each write only their own
// outputs (the scores of one KV head of one layer, its ranking, its
// compaction, its attention), so the results do not depend on which
// goroutine runs a unit or when; what combines units (a layer's joint
// ranking, its entropy, the budget split) runs in a fixed order.

// workers is how many goroutines one Compress or multi-token Attend may use.
func (c *KVCache) workers() int {
	if c.cfg.Workers > 0 {
		return c.cfg.Workers
	}
	return max(runtime.GOMAXPROCS(0), 1)
}

// parallel runs do(w, i) for every unit i in 0 … n−1 on min(workers, n)
// goroutines, the calling one among them, and returns when all are done.
// Units are taken in increasing order from a shared counter (put the
// largest first); w < workers numbers the goroutine, so that each unit
// uses only its goroutine's scratch. With one worker it runs the units in
// order on the calling goroutine and starts none.
func parallel(workers, n int, do func(w, i int)) {
	workers = min(workers, n)
	if workers <= 1 {
		for i := range n {
			do(0, i)
		}
		return
	}
	var next atomic.Int64
	run := func(w int) {
		for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
			do(w, i)
		}
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Go(func() { run(w) })
	}
	run(0)
	wg.Wait()
}

// minSplitWork is the number of query·key products (t tokens × Heads ×
// entries × HeadDim) below which a multi-token Attend stays on the calling
// goroutine: starting and joining goroutines costs more than the work.
// Tests lower it to exercise the split on small caches.
var minSplitWork = 1 << 16
