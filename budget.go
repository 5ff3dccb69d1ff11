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
// index, so rankings are deterministic (spec section 4).
func byRank(a, b scored) int {
	switch {
	case a.score > b.score:
		return -1
	case a.score < b.score:
		return 1
	}
	return int(a.idx) - int(b.idx)
}

// rankAll returns every entry of the flat scores s, best first.
func rankAll(s []float32) []scored {
	r := make([]scored, len(s))
	for i, v := range s {
		r[i] = scored{v, int32(i)}
	}
	slices.SortFunc(r, byRank)
	return r
}

// layerBudgets splits total prefix entries per head among layers in
// proportion to their entropies e (spec section 5): b_l = ⌊e_l/Σe · total⌋.
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

// headCaps returns how many prefix tokens each KV head keeps, given the
// number c[kv] it won in the layer's joint top-k, the layer's per-head budget
// b, its prefix length m, and the floor (spec section 4).
func headCaps(c []int, b, m, budget int, mode FloorMode, alpha float64) []int {
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
		caps[kv] = min(cp, m)
	}
	return caps
}

// pyramidBudget is PyramidKV's per-head budget for layer l of L whose prefix
// has m tokens (spec section 7): a linear schedule from max down to min
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

// cakeBudgets splits total among layers in proportion to their preferences
// pref, each capped at its prefix m_l with the excess going to the others,
// and the remainder of the integer split going one by one to the largest
// fractional parts (lower layer first on ties), so that the budgets sum to
// total exactly unless every layer is whole (spec section 7). When final is
// false more layers will be added (the cascade), and each layer gets one
// entry more than its rounded-down share, capped: an upper bound of its
// final budget, which only shrinks as layers are added.
func cakeBudgets(pref []float64, m []int, total int, final bool) []int {
	b := make([]int, len(pref))
	share, whole := shares(pref, m, total, true)
	left := total
	for l := range b {
		if whole[l] {
			b[l] = m[l]
		} else {
			b[l] = int(math.Floor(share[l]))
			if !final {
				b[l] = min(b[l]+1, m[l])
			}
		}
		left -= b[l]
	}
	if final && left > 0 {
		order := make([]int, 0, len(b))
		for l := range b {
			if !whole[l] {
				order = append(order, l)
			}
		}
		slices.SortStableFunc(order, func(x, y int) int {
			fx, fy := share[x]-math.Floor(share[x]), share[y]-math.Floor(share[y])
			switch {
			case fx > fy:
				return -1
			case fx < fy:
				return 1
			}
			return 0
		})
		for _, l := range order {
			if left == 0 {
				break
			}
			if b[l] < m[l] {
				b[l]++
				left--
			}
		}
	}
	return b
}
