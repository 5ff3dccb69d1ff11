package lava

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// This file spreads Compress and Attend over Config.Workers goroutines.
// The work is cut into units that each write only their own outputs (the
// scores of one KV head of one layer, its ranking, its compaction, its
// attention), so the results do not depend on which goroutine runs a unit
// or when; what combines units (a layer's joint ranking, its entropy, the
// budget split) runs in a fixed order.

// workers is how many goroutines one Compress or Attend may use.
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
// entries × HeadDim) below which an Attend stays on the calling goroutine:
// waking the pool's goroutines and waiting for them (microseconds) costs
// more than the work. Tests lower it to exercise the split on small caches.
var minSplitWork = 1 << 18

// attendPool is the goroutines that share an Attend's KV heads with the
// calling one: started by the first Attend that splits, kept by the cache
// for the next ones, so that a decode step of a large cache uses every core
// and allocates nothing. They hold no reference to the cache between calls
// (a cleanup stops them once it is unreachable).
type attendPool struct {
	start []chan struct{} // one per extra goroutine: run the current call
	done  chan struct{}   // a goroutine finished its share
	next  atomic.Int64    // the next KV head to take
	sc    []attendScratch // the extra goroutines' scratch, sc[w−1] goroutine w's
	alive sync.WaitGroup  // the goroutines not yet stopped

	// The current call, set before the goroutines start and cleared after.
	c        *KVCache
	L        *layer
	qs, outs []float32 // the groups' queries and outputs, [KVHeads][t][g][HeadDim]
	t, known int
}

// newAttendPool starts workers − 1 goroutines.
func newAttendPool(workers int) *attendPool {
	p := &attendPool{start: make([]chan struct{}, workers-1), done: make(chan struct{}, workers-1), sc: make([]attendScratch, workers-1)}
	for w := range p.start {
		p.start[w] = make(chan struct{})
		p.alive.Go(func() {
			for range p.start[w] {
				p.run(w + 1)
				p.done <- struct{}{}
			}
		})
	}
	return p
}

// bytes is the memory the pool's scratch holds.
func (p *attendPool) bytes() int64 {
	var n int64
	for w := range p.sc {
		n += p.sc[w].bytes()
	}
	return n
}

// stop ends the pool's goroutines.
func (p *attendPool) stop() {
	for _, ch := range p.start {
		close(ch)
	}
}

// run attends KV heads taken from the shared counter until none is left,
// with goroutine w's scratch (w = 0, the caller's, is the cache's own).
func (p *attendPool) run(w int) {
	c, L, tgd := p.c, p.L, p.t*p.c.group*p.c.cfg.HeadDim
	var sc *attendScratch
	if w == 0 {
		sc = &attendScratch{attn: c.attn, attnInv: c.attnInv}
	} else {
		sc = &p.sc[w-1]
	}
	for kv := int(p.next.Add(1) - 1); kv < len(L.heads); kv = int(p.next.Add(1) - 1) {
		c.attendHead(L, kv, p.qs[kv*tgd:(kv+1)*tgd], p.outs[kv*tgd:(kv+1)*tgd], p.t, p.known, sc, nil, 0)
	}
	if w == 0 {
		c.attn, c.attnInv = sc.attn, sc.attnInv
	}
}

// attendSplit is Attend's attention of t tokens without decode eviction,
// one unit per KV head, on the cache's pool of workers goroutines (the
// calling one among them). The calling goroutine copies the groups'
// queries in and their outputs out, so that q and out never reach another
// goroutine (and a caller's buffers may stay on its stack).
func (c *KVCache) attendSplit(L *layer, q, out []float32, t, known, workers int) {
	workers = min(workers, len(L.heads))
	if c.pool == nil || len(c.pool.start) != workers-1 {
		if c.pool != nil { // Workers 0 follows GOMAXPROCS, which changed
			c.poolCleanup.Stop()
			c.pool.stop()
		}
		c.pool = newAttendPool(workers)
		c.poolCleanup = runtime.AddCleanup(c, (*attendPool).stop, c.pool)
	}
	p := c.pool
	// Every goroutine's scratch is made large enough for any KV head of the
	// layer before the split (as attendHead sizes it for one head), so
	// that its size does not depend on which heads a goroutine took
	// (AllocatedBytes counts it).
	rows, entries := t*c.group, 0
	for kv := range L.heads {
		entries = max(entries, L.heads[kv].len(), cap(L.heads[kv].pos))
	}
	own := attendScratch{attn: c.attn, attnInv: c.attnInv}
	own.reserve(rows, entries)
	c.attn, c.attnInv = own.attn, own.attnInv
	for w := range p.sc {
		p.sc[w].reserve(rows, entries)
	}
	tgd := t * c.group * c.cfg.HeadDim
	c.splitRows = growTo(c.splitRows, 2*len(q))
	p.qs, p.outs = c.splitRows[:len(q)], c.splitRows[len(q):2*len(q)]
	for kv := range L.heads {
		gatherGroup(c, p.qs[kv*tgd:(kv+1)*tgd], q, kv, t)
	}
	p.c, p.L, p.t, p.known = c, L, t, known
	p.next.Store(0)
	for _, ch := range p.start {
		ch <- struct{}{}
	}
	p.run(0)
	for range p.start {
		<-p.done
	}
	for kv := range L.heads {
		scatterGroup(c, out, p.outs[kv*tgd:(kv+1)*tgd], kv, t)
	}
	p.c, p.L, p.qs, p.outs = nil, nil, nil, nil
}
