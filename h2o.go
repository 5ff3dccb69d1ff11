package lava

import "math"

// h2oBlock is how many prompt queries one kernel call scores at a time:
// their attention rows over the keys so far are the scratch H2O needs.
const h2oBlock = 32

// accumulateHeavy adds the attention of the t prompt tokens just appended to
// layer L (their queries q, [t][Heads][HeadDim]) to every key up to each
// query's position: H2O's column sums of the causal attention, computed as
// chunks arrive so that no n×n matrix is ever held.
func (c *KVCache) accumulateHeavy(L *layer, q []float32, t int) {
	if q == nil {
		L.heavyMissing = true
		return
	}
	d, H, g := c.cfg.HeadDim, c.cfg.Heads, c.group
	n := L.heads[0].len() // keys so far, this chunk's included
	first := n - t        // position of the chunk's first token
	if L.heavy == nil {
		L.heavy = make([][]float32, c.cfg.KVHeads)
	}
	scale := float32(1 / math.Sqrt(float64(d)))
	qblk := make([]float32, h2oBlock*d)
	rows := make([]float32, h2oBlock*n)
	for kv := range L.heads {
		L.heavy[kv] = append(L.heavy[kv], make([]float32, t)...)
		acc := L.heavy[kv]
		h := &L.heads[kv]
		for qh := kv * g; qh < (kv+1)*g; qh++ {
			for lo := 0; lo < t; lo += h2oBlock {
				hi := min(t, lo+h2oBlock)
				// Keys beyond the block's last query are masked anyway.
				nk := first + hi
				for j := lo; j < hi; j++ {
					copy(qblk[(j-lo)*d:(j-lo+1)*d], q[(j*H+qh)*d:(j*H+qh+1)*d])
				}
				z := rows[:(hi-lo)*nk]
				if c.cfg.Element == Float16 {
					scoreBlockF16(qblk[:(hi-lo)*d], h.k16[:nk*d], d, scale, z)
				} else {
					scoreBlock(qblk[:(hi-lo)*d], h.k[:nk*d], d, scale, z)
				}
				for j := lo; j < hi; j++ {
					row := z[(j-lo)*nk : (j-lo)*nk+first+j+1] // causal
					inv := 1 / expSub(row, maxOf(row))
					axpy(inv, row, acc[:len(row)])
				}
			}
		}
	}
}
