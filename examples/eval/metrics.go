package main

import (
	"math"
	"slices"
)

// logSoftmax returns log p for the distribution softmax(logits), in
// float64 so that KL terms of tiny probabilities do not cancel to noise.
func logSoftmax(logits []float32) []float64 {
	out := make([]float64, len(logits))
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = max(mx, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - mx)
	}
	lse := mx + math.Log(sum)
	for i, v := range logits {
		out[i] = float64(v) - lse
	}
	return out
}

// kl returns KL(p ‖ q) = Σ p·(log p − log q) in nats for two
// log-distributions over the same vocabulary. Terms where p underflows to
// 0 contribute nothing.
func kl(logP, logQ []float64) float64 {
	var s float64
	for i, lp := range logP {
		p := math.Exp(lp)
		if p == 0 {
			continue
		}
		s += p * (lp - logQ[i])
	}
	// Rounding can leave a tiny negative sum for identical-looking
	// distributions; KL is never negative.
	return max(s, 0)
}

// argmax returns the index of the largest value, the first among equals
// (the same rule as sample.Argmax, so "greedy" means one thing throughout).
func argmax(x []float64) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// relL1 returns ‖a − b‖₁ / ‖a‖₁, the relative L1 error of b against the
// reference a (0 when both are zero).
func relL1(a, b []float32) float64 {
	var num, den float64
	for i, x := range a {
		num += math.Abs(float64(x) - float64(b[i]))
		den += math.Abs(float64(x))
	}
	if den == 0 {
		if num == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return num / den
}

// firstDivergence returns the number of leading positions at which the
// compressed model's top-1 token equals the full model's. Under teacher
// forcing with the full model's own greedy continuation, this is exactly
// where free-running greedy decoding over the compressed cache first
// leaves that continuation: until then both runs feed the same tokens, so
// they compute the same logits. agree[k] is whether step k's top-1 tokens
// agree; the result is len(agree) when all do.
func firstDivergence(agree []bool) int {
	for k, ok := range agree {
		if !ok {
			return k
		}
	}
	return len(agree)
}

// copySteps returns the indices k ≥ 1 of the continuation cont whose token
// is a long-range copy from the prompt: one the model can only get right by
// reaching back past the observation window. Step k qualifies when
//
//  1. the bigram (cont[k−1], cont[k]) occurs in the prompt's evictable
//     prefix, as (prompt[i−1], prompt[i]) with 1 ≤ i < len(prompt) − window
//     (an induction-style copy: the token follows the same token it followed
//     earlier in the prompt);
//  2. cont[k] does not occur in the last window prompt tokens, which every
//     policy keeps, so the token cannot be copied from there; and
//  3. cont[k] does not occur earlier in the continuation (cont[0..k−1]), so
//     it is not copied from the uncompressed decode tokens either.
//
// On a children's-story model this picks out names and nouns introduced
// early in the story ("Lily", "ball", the second piece of a split name)
// coming back after the window, and skips function words, which nearly
// always occur in the window.
func copySteps(prompt, cont []int, window int) []int {
	m := len(prompt) - window // prefix positions are < m
	if m < 2 {
		return nil
	}
	type bigram struct{ a, b int }
	inPrefix := map[bigram]bool{}
	for i := 1; i < m; i++ {
		inPrefix[bigram{prompt[i-1], prompt[i]}] = true
	}
	inWindow := map[int]bool{}
	for _, t := range prompt[max(m, 0):] {
		inWindow[t] = true
	}
	var steps []int
	for k := 1; k < len(cont); k++ {
		t := cont[k]
		if inPrefix[bigram{cont[k-1], t}] && !inWindow[t] && !slices.Contains(cont[:k], t) {
			steps = append(steps, k)
		}
	}
	return steps
}

// untilStoryEnd returns cont up to (not including) its first bos or eos
// token. Stories260K ends a story with BOS and then greedily starts its
// most typical one ("Once upon a time, there was a little girl named
// Lily…"); what follows no longer depends on the prompt's story, so it
// would only dilute the recall measure with tokens the model produces from
// its prior.
func untilStoryEnd(cont []int, bos, eos int) []int {
	for k, t := range cont {
		if t == bos || t == eos {
			return cont[:k]
		}
	}
	return cont
}

// summary is a mean with the half-width of its 95 % confidence interval.
type summary struct {
	mean, half float64
	n          int // values summarised
}

// summarize returns the mean of xs and the half-width of its two-sided
// 95 % confidence interval from Student's t distribution with n − 1
// degrees of freedom: t·sd/√n, with sd the sample standard deviation. With
// fewer than two values the half-width is NaN (no interval).
func summarize(xs []float64) summary {
	n := len(xs)
	if n == 0 {
		return summary{mean: math.NaN(), half: math.NaN()}
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	mean := sum / float64(n)
	if n < 2 {
		return summary{mean: mean, half: math.NaN(), n: n}
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	sd := math.Sqrt(ss / float64(n-1))
	return summary{mean: mean, half: tQuantile975(n-1) * sd / math.Sqrt(float64(n)), n: n}
}

// tQuantile975 returns the 0.975 quantile of Student's t distribution with
// nu ≥ 1 degrees of freedom, by bisection on tTwoSided.
func tQuantile975(nu int) float64 {
	lo, hi := 0.0, 1.0
	for tTwoSided(hi, nu) < 0.95 {
		hi *= 2
	}
	for range 200 {
		mid := (lo + hi) / 2
		if tTwoSided(mid, nu) < 0.95 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// tTwoSided returns P(|T| < t) for Student's t with nu degrees of freedom,
// from the closed forms for integer nu (Abramowitz & Stegun 26.7.3–4):
// with θ = atan(t/√ν),
//
//	ν odd:  (2/π)·(θ + sinθ·(cosθ + (2/3)cos³θ + … + (2·4…(ν−3))/(3·5…(ν−2))·cos^(ν−2)θ))
//	ν even: sinθ·(1 + (1/2)cos²θ + (1·3)/(2·4)cos⁴θ + … + (1·3…(ν−3))/(2·4…(ν−2))·cos^(ν−2)θ)
func tTwoSided(t float64, nu int) float64 {
	th := math.Atan(t / math.Sqrt(float64(nu)))
	s, c := math.Sin(th), math.Cos(th)
	if nu%2 == 1 {
		if nu == 1 {
			return 2 / math.Pi * th
		}
		term, sum := c, c
		for j := 3; j <= nu-2; j += 2 {
			term *= c * c * float64(j-1) / float64(j)
			sum += term
		}
		return 2 / math.Pi * (th + s*sum)
	}
	term, sum := 1.0, 1.0
	for j := 2; j <= nu-2; j += 2 {
		term *= c * c * float64(j-1) / float64(j)
		sum += term
	}
	return s * sum
}
