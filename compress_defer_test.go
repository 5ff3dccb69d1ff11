package lava

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// While a cascade is under way Compress may leave a re-trimmed layer's
// evicted rows in place until the layer is read (trimLayers, settle). That
// is invisible: every flow gives byte-identical Reports, Attend outputs,
// Views, saved caches, clones, Bytes and per-layer allocated bytes with and
// without deferring, whatever reads the layers between the cascade's steps,
// under every policy, element type, decode reserve and Workers value; and
// the deferring does happen.
func TestDeferredCompactionInvisible(t *testing.T) {
	splitAlways(t)
	saved := deferCompaction
	t.Cleanup(func() { deferCompaction = saved })
	deferred := 0 // heads seen holding deferred rows, over all runs
	for _, pol := range slices.Concat(allPolicies, []Policy{LAVa().WithPooling(PoolAvg, 5), LAVa().WithFloor(FloorReference, 0.2)}) {
		for _, el := range []Element{Float32, Q4_0} {
			for _, reserve := range []int{0, 2} {
				for _, flow := range []string{"cascade", "layer-major", "append-back"} {
					if flow == "append-back" && reserve == 0 {
						continue // beyond the reserve the storage may grow earlier (AllocatedBytes)
					}
					for _, workers := range []int{1, 2} {
						name := fmt.Sprintf("%s/%v/reserve=%d/%s/workers=%d", pol.Name(), el, reserve, flow, workers)
						cfg := Config{Layers: 8, Heads: 4, KVHeads: 2, HeadDim: 8, Window: 4, Budget: 16,
							Policy: pol, KeyElement: el, ValueElement: el, DecodeReserve: reserve, Workers: workers}
						deferCompaction = false
						want, _ := deferFlow(t, cfg, flow)
						deferCompaction = true
						got, n := deferFlow(t, cfg, flow)
						deferred += n
						if !bytes.Equal(got, want) {
							t.Errorf("%s: results differ when compaction is deferred", name)
						}
					}
				}
			}
		}
	}
	if deferred == 0 {
		t.Error("no Compress deferred a compaction: the test compares nothing")
	}
}

// deferFlow runs one flow on a new cache of cfg and returns its transcript
// and the number of heads seen holding deferred rows after a Compress.
//
//	cascade      appends each layer's prompt and compresses, then reads an
//	             earlier layer in turn with View, Attend, a save, a clone
//	             and its Truncate, or a Truncate of the cache; then decodes.
//	layer-major  appends each layer's prompt in chunks, each attended and
//	             followed by a Compress, before the next layer's.
//	append-back  the cascade, appending one token (within the reserve) to
//	             the layer before after each Compress, whose query Attend
//	             then brings.
func deferFlow(t *testing.T, cfg Config, flow string) ([]byte, int) {
	const n, chunk, steps = 120, 50, 4
	p := randomPrompt(rand.New(rand.NewPCG(12, uint64(cfg.KeyElement))), cfg, n+cfg.Layers+steps)
	p.storedAs(cfg)
	c := newCache(t, cfg)
	var tr transcript
	qrow := cfg.Heads * cfg.HeadDim
	next := make([]int, cfg.Layers) // tokens appended to each layer
	attend := func(l, lo, hi int) {
		out := make([]float32, (hi-lo)*qrow)
		if err := c.Attend(l, p.q[l][lo*qrow:hi*qrow], out); err != nil {
			t.Fatal(err)
		}
		tr.floats(out)
	}
	deferred := 0
	compress := func() {
		tr.compress(t, c)
		for l := range c.layers {
			for kv := range c.layers[l].heads {
				if c.layers[l].heads[kv].evicted > 0 {
					deferred++
				}
			}
			held, alloc := c.LayerBytes(l)
			fmt.Fprintf(&tr, "layer %d: %d held, %d allocated, tokens %d, lens", l, held, alloc, c.Tokens(l))
			for kv := range cfg.KVHeads {
				fmt.Fprintf(&tr, " %d", c.Len(l, kv))
			}
			fmt.Fprintln(&tr)
		}
		fmt.Fprintf(&tr, "bytes %d\n", c.Bytes())
	}
	for l := range cfg.Layers {
		switch flow {
		case "layer-major":
			for lo := 0; lo < n; lo += chunk {
				hi := min(n, lo+chunk)
				p.appendRange(t, c, l, lo, hi, false)
				attend(l, lo, hi)
				compress()
			}
			next[l] = n
			continue
		}
		p.appendRange(t, c, l, 0, n, true)
		next[l] = n
		compress()
		if l == 0 {
			continue
		}
		j := l - 1
		if flow == "append-back" {
			p.appendRange(t, c, j, next[j], next[j]+1, false)
			fmt.Fprintf(&tr, "appended back: %d held\n", c.Len(j, 0))
			attend(j, next[j], next[j]+1)
			next[j]++
			continue
		}
		switch l % 6 {
		case 1:
			for kv := range cfg.KVHeads {
				v, err := c.View(j, kv)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&tr, "view %d %d: %v\n", j, kv, v.Positions)
				tr.floats(v.AppendKeys(nil))
				tr.floats(v.AppendValues(nil))
			}
		case 2:
			attend(j, next[j]-1, next[j])
		case 3:
			if cfg.Policy.scorer == nil {
				data, err := c.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				tr.Write(data)
			}
		case 4:
			cl := c.Clone()
			tr.state(t, cl)
			if err := cl.Truncate(n - 2); err != nil {
				t.Fatal(err)
			}
			tr.state(t, cl)
		case 5:
			// Drop the last token of every layer so far (their scorings
			// go with it) and append it again.
			if err := c.Truncate(n - 1); err != nil {
				t.Fatal(err)
			}
			tr.state(t, c)
			for i := range l + 1 {
				p.appendRange(t, c, i, n-1, n, true)
			}
		}
	}
	for range steps {
		for l := range cfg.Layers {
			p.appendRange(t, c, l, next[l], next[l]+1, false)
			attend(l, next[l], next[l]+1)
			next[l]++
		}
	}
	compress()
	tr.state(t, c)
	return tr.Bytes(), deferred
}
