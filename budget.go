package lava

import (
	"math"
	"slices"
)

// scored is one prefix token of a layer in the joint ranking: its score and
// its flat index kv·m + i.
type scored struct {
	score float32
	idx   int32
}

// byRank orders scored entries best first: higher score, then lower flat
// index, so rankings are deterministic.
func byRank(a, b scored) int {
	switch {
	case a.score > b.score:
		return -1
	case a.score < b.score:
		return 1
	}
	return int(a.idx) - int(b.idx)
}

// rankLayer ranks the candidates of a layer whose scores s hold head after
// head (head kv's at s[off[kv]:off[kv+1]]) best first, as byRank orders
// them, with one sort of packed keys, and returns each head's ranking of
// its own rows and, with joint, the layer's joint ranking. Within a head the
// flat index orders rows as the row index does, so a head's ranking is the
// joint ranking restricted to its rows: one pass over the sorted keys hands
// every head its own. sc is scratch, grown as needed.
func rankLayer(s []float32, off []int, joint bool, sc *rankScratch) (orders [][]int32, winners []scored) {
	sc.keys, sc.tmp = growTo(sc.keys, len(s)), growTo(sc.tmp, len(s))
	for i, v := range s {
		sc.keys[i] = rankKey(v, i)
	}
	sorted := sortRankKeys(sc.keys, sc.tmp)
	orders = make([][]int32, len(off)-1)
	for kv := range orders {
		orders[kv] = make([]int32, 0, off[kv+1]-off[kv])
	}
	if joint {
		winners = make([]scored, len(s))
	}
	headOf := headsOf(off, &sc.headOf)
	for j, k := range sorted {
		i := int(uint32(k))
		kv := headOf[i]
		orders[kv] = append(orders[kv], int32(i-off[kv]))
		if joint {
			winners[j] = scored{s[i], int32(i)}
		}
	}
	return orders, winners
}

// rankScratch is the scratch of rankLayer.
type rankScratch struct {
	keys, tmp []uint64
	headOf    []int32
}

// headsOf returns, in the scratch *buf, the head of every flat index of a
// layer whose head kv's candidates start at off[kv]: a table, to spare a
// search of off per index.
func headsOf(off []int, buf *[]int32) []int32 {
	h := growTo(*buf, off[len(off)-1])
	for kv := range len(off) - 1 {
		for i := off[kv]; i < off[kv+1]; i++ {
			h[i] = int32(kv)
		}
	}
	*buf = h
	return h
}

// rankKey packs score v and index i (0 ≤ i < 2³²) so that increasing keys
// are in byRank's order: higher score first, then lower index. The high
// half is the score's bits, ordered as the floats, then inverted; −0 takes
// +0's, as they compare equal.
func rankKey(v float32, i int) uint64 {
	b := math.Float32bits(v)
	if b&(1<<31) != 0 && b != 1<<31 {
		b = ^b // negative: larger magnitudes lower
	} else {
		b |= 1 << 31 // positive, +0 and −0 alike
	}
	return uint64(^b)<<32 | uint64(uint32(i))
}

// radixMin is the number of keys from which sortRankKeys sorts by radix:
// below it the 256-entry histograms cost more than a comparison sort.
const radixMin = 512

// sortRankKeys sorts the distinct keys in increasing order and returns them,
// in keys or in tmp (scratch of the same length). The keys' low halves must
// increase along keys, as rankLayer builds them: then a stable radix sort of
// the high halves, least significant byte first, orders the whole keys, in
// four passes over them (fewer when a byte is the same in every key).
func sortRankKeys(keys, tmp []uint64) []uint64 {
	if len(keys) < radixMin {
		slices.Sort(keys)
		return keys
	}
	for shift := 32; shift < 64; shift += 8 {
		var count [256]int
		for _, k := range keys {
			count[byte(k>>shift)]++
		}
		if count[byte(keys[0]>>shift)] == len(keys) {
			continue // one digit: the pass would keep the order
		}
		at := 0
		for d, n := range count {
			count[d] = at
			at += n
		}
		for _, k := range keys {
			d := byte(k >> shift)
			tmp[count[d]] = k
			count[d]++
		}
		keys, tmp = tmp, keys
	}
	return keys
}

// layerBudgets splits total prefix entries per head among layers in
// proportion to their entropies e: b_l = ⌊e_l/Σe · total⌋.
// A layer whose budget reaches its prefix length m_l is kept whole; with
// redistribute, what it cannot use goes to the others, again in proportion
// to their entropies, until no budget exceeds its layer.
func layerBudgets(e []float64, m []int, total int, redistribute bool) []int {
	share, whole := shares(e, m, total, redistribute)
	b := make([]int, len(e))
	for l := range b {
		b[l] = int(math.Floor(share[l]))
		if whole[l] {
			b[l] = m[l]
		}
	}
	return b
}

// shares splits total among layers in proportion to the weights w (evenly
// if they are all zero). With capped, a layer whose share reaches its
// prefix length m_l is kept whole (whole[l]) and the rest is split again
// among the others, until no share exceeds its layer.
func shares(w []float64, m []int, total int, capped bool) (share []float64, whole []bool) {
	share = make([]float64, len(w))
	whole = make([]bool, len(w))
	for {
		remaining, sum, open := total, 0.0, 0
		for l := range w {
			if whole[l] {
				remaining -= m[l]
			} else {
				sum += w[l]
				open++
			}
		}
		rem := float64(max(remaining, 0))
		grew := false
		for l := range w {
			if whole[l] {
				continue
			}
			if sum > 0 {
				share[l] = w[l] / sum * rem
			} else {
				share[l] = rem / float64(open)
			}
			if capped && share[l] >= float64(m[l]) {
				whole[l], grew = true, true
			}
		}
		if !grew {
			return share, whole
		}
	}
}

// headCaps returns how many candidates each KV head keeps, given the number
// c[kv] it won in the layer's joint top-k, the layer's per-head budget b,
// each head's candidates m[kv], and the floor.
func headCaps(c []int, b int, m []int, budget int, mode FloorMode, alpha float64) []int {
	caps := make([]int, len(c))
	var floor float64
	switch mode {
	case FloorAdaKV:
		floor = math.Floor(alpha * float64(b))
	case FloorReference:
		floor = math.Floor(alpha * float64(budget))
	}
	for kv, n := range c {
		cp := n
		if mode != FloorNone {
			cp = int(math.RoundToEven((1-alpha)*float64(n) + floor))
		}
		caps[kv] = min(cp, m[kv])
	}
	return caps
}

// pyramidBudget is PyramidKV's per-head budget for layer l of L whose prefix
// has m tokens: a linear schedule from max down to min
// around the mean b̄, lower layers keeping more.
func pyramidBudget(bbar int, beta float64, l, L, m int) int {
	lo := int(math.Floor(float64(bbar) / beta))
	hi := 2*bbar - lo
	if hi >= m {
		hi = m
		lo = 2*bbar - hi
	}
	if L == 1 {
		return bbar
	}
	step := (hi - lo) / (L - 1)
	return hi - l*step
}

// preferences turns CAKE's log preferences log P_l = log H_l/τ1 + log V_l/τ2
// into weights proportional to P_l, scaled so the largest is 1: computed in
// the log domain, P_l itself may overflow or underflow float64 for small τ.
// All weights are 0 (an even split) when no layer has a positive P_l.
func preferences(logP []float64) []float64 {
	top := math.Inf(-1)
	for _, v := range logP {
		top = max(top, v)
	}
	w := make([]float64, len(logP))
	if math.IsInf(top, -1) {
		return w
	}
	for l, v := range logP {
		w[l] = math.Exp(v - top)
	}
	return w
}

// cakeBudgets splits total among layers in proportion to their preferences
// pref as CAKE's official code does: from the truncated shares, each layer is
// capped at its prefix m_l and the excess shared evenly among the layers
// below their cap (one more each to the lowest-numbered for the remainder),
// until none exceeds its cap; then the truncation deficit is shared the same
// way, so the budgets sum to total unless every layer is whole. When final
// is false more layers will be added (the cascade), and every layer is kept
// whole: sharing the excess evenly is not monotone (a layer added later can
// raise an earlier layer's budget, by up to 24 entries in a random search
// over 8 layers of equal prefixes), so no smaller provisional budget is
// safe, and the cascade must end with the kept sets of one Compress.
func cakeBudgets(pref []float64, m []int, total int, final bool) []int {
	b := make([]int, len(pref))
	if !final {
		copy(b, m)
		return b
	}
	var sum float64
	for _, p := range pref {
		sum += p
	}
	excess := 0
	for l := range b {
		if sum > 0 {
			b[l] = int(pref[l] / sum * float64(total))
		} else {
			b[l] = total / len(b)
		}
		if b[l] > m[l] {
			excess += b[l] - m[l]
			b[l] = m[l]
		}
	}
	shareEvenly(b, m, excess)
	left := total
	for _, v := range b {
		left -= v
	}
	shareEvenly(b, m, left)
	return b
}

// shareEvenly adds extra to the budgets b below their caps m, evenly, the
// remainder one each to the lowest-numbered, capping again and sharing what
// the caps cut off until nothing is left or every layer is at its cap.
func shareEvenly(b, m []int, extra int) {
	open := make([]int, 0, len(b))
	for extra > 0 {
		open = open[:0]
		for l := range b {
			if b[l] < m[l] {
				open = append(open, l)
			}
		}
		if len(open) == 0 {
			return
		}
		each, rem := extra/len(open), extra%len(open)
		extra = 0
		for i, l := range open {
			b[l] += each
			if i < rem {
				b[l]++
			}
			if b[l] > m[l] {
				extra += b[l] - m[l]
				b[l] = m[l]
			}
		}
	}
}
