package lava

import (
	"fmt"
	"math"
	"strings"
)

// Policy selects how Compress ranks tokens and splits the budget among
// layers and heads. The zero Policy is LAVa. Build one with a constructor
// ([LAVa], [SnapKV], [PyramidKV], …) and adjust it with [Policy.WithPooling]
// and [Policy.WithFloor]; its parameters are checked by [New].
//
// Every policy keeps Config.Budget entries per KV head per layer on average
// (window included), and every policy's evicted entries are freed.
//
// A Policy is data: what the cache needs to know about a policy is a field
// here, set by its constructor, so that no other code asks which policy it
// is. A new built-in policy is a constructor plus its scoring function.
type Policy struct {
	name string
	// score fills the candidate scores of one KV head; nil is LAVa's.
	// scoreAll, set instead by the policies that score a layer's heads
	// together (TOVA) or call the host (Custom), fills a layer's; such
	// layers are scored one after the other on the calling goroutine.
	score    scoreFunc
	scoreAll layerScoreFunc

	layers LayerAllocation
	heads  HeadAllocation
	// window is the number of most recent tokens the policy keeps and
	// scores with, or 0 for Config.Window.
	window int
	// queries is which queries scoring needs Append to be given.
	queries queryNeed
	// accumulates: Append scores every prompt query into per-entry sums
	// (H2O's heavy hitters).
	accumulates bool
	// decode is how the policy evicts while decoding.
	decode decodeEviction
	// pool and kernel smooth scores along the token axis; kernel 0 means
	// the policy does not pool. floor and alpha are the head floor of
	// joint head budgets.
	pool   Pooling
	kernel int
	floor  FloorMode
	alpha  float64
	// check validates the policy's own parameters, or is nil.
	check func(p *Policy, c *Config) error
	// misuse is an option applied where it has no meaning, reported by New.
	misuse error

	beta, tau1, tau2, gamma float64 // PyramidKV, CAKE
	sinks                   int     // StreamingLLM
	seed                    uint64  // Random
	scorer                  Scorer  // Custom
}

// queryNeed is which queries a policy's scoring reads.
type queryNeed uint8

const (
	queriesWindow queryNeed = iota // the last Window tokens'
	queriesNone                    // none: scores come from positions or chance
	queriesAll                     // every prompt token's (H2O)
)

// decodeEviction is how a policy keeps a compressed layer's size while
// decoding.
type decodeEviction uint8

const (
	decodeKeep decodeEviction = iota // never evicts decode tokens
	// decodeOldest evicts the oldest entry after the sinks at Append.
	decodeOldest
	// decodeLeastAttendedHead evicts, per head at Attend, the candidate
	// the current query group attends to least (window excluded).
	decodeLeastAttendedHead
	// decodeLeastAttendedLayer evicts at Attend the entry all query heads
	// of the layer attend to least, from every head (one shared kept set).
	decodeLeastAttendedLayer
)

// Pooling selects how per-token attention is smoothed along the token axis
// before tokens are ranked (see docs/algorithm.md).
type Pooling int

const (
	// PoolMax takes the maximum over the positions of the kernel that exist
	// (edge windows are shorter). It is the paper's default.
	PoolMax Pooling = iota
	// PoolAvg sums over the kernel with zero padding and divides by the
	// kernel size, also at the edges (PyTorch count_include_pad=True).
	PoolAvg
)

func (p Pooling) String() string { return enumName(int(p), "Pooling", "max", "avg") }

// enumName returns the name of value v of an enumeration whose values
// 0, 1, … are named names, or type(v) for a value out of range.
func enumName(v int, typ string, names ...string) string {
	if v >= 0 && v < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", typ, v)
}

// FloorMode selects how a head's share of the layer budget is derived from
// the joint top-k of joint head budgets.
type FloorMode int

const (
	// FloorNone is the paper's mode: a head keeps exactly the prefix tokens
	// it wins in the joint top-k of its layer.
	FloorNone FloorMode = iota
	// FloorAdaKV guarantees every head a floor: cap = round((1−α)·c + ⌊α·b_l⌋),
	// where b_l is the layer's per-head budget without the window.
	FloorAdaKV
	// FloorReference reproduces the official LAVa code, whose floor is
	// ⌊α·B⌋ from the configured budget including the window, fixed for all
	// layers. It keeps 0.5–4.5 % more entries than the budget for typical
	// budgets; use it only to reproduce published numbers.
	FloorReference
)

func (f FloorMode) String() string {
	return enumName(int(f), "FloorMode", "none", "adakv", "reference")
}

// LayerAllocation is how a policy splits the total budget among layers.
type LayerAllocation uint8

const (
	// EntropyLayers gives each layer a share proportional to the
	// normalised entropy of its scores (LAVa).
	EntropyLayers LayerAllocation = iota
	// UniformLayers gives every layer Budget − Window prefix entries per head.
	UniformLayers
	pyramidLayers
	cakeLayers
)

// HeadAllocation is how a layer's budget is split among its KV heads.
type HeadAllocation uint8

const (
	// JointHeads ranks the prefix tokens of all KV heads of a layer
	// together, so heads keep different numbers (LAVa, AdaKV).
	JointHeads HeadAllocation = iota
	// UniformHeads lets every KV head keep its own best b_l prefix tokens.
	UniformHeads
)

// Defaults of the policies' parameters.
const (
	DefaultWindow      = 32  // Config.Window
	DefaultKernel      = 7   // the pooling kernel of every pooling policy but CAKE
	DefaultAdaAlpha    = 0.2 // AdaKV's floor fraction
	DefaultPyramidBeta = 20.0
	DefaultCAKETau     = 1.0 // CAKE's τ1 and τ2
	DefaultCAKEGamma   = 200.0
	DefaultCAKEKernel  = 5 // CAKE's average-pooling kernel
	DefaultSinks       = 4 // StreamingLLM's attention sinks
)

// Bounds of policy parameters: beyond them budgets or scores stop being
// finite numbers.
const (
	minCAKETau   = 1e-3
	maxCAKEGamma = 1e9
)

// LAVa is the default policy: tokens ranked by pooled window attention, max
// over the query heads of a KV head, times the head's largest value L1
// norm; one joint ranking per layer (dynamic head budgets, see
// [Policy.WithFloor]) and per-layer budgets proportional to score entropy.
// Shen et al., arXiv 2509.09754.
func LAVa() Policy { return Policy{}.withDefaults() }

// withDefaults fills in what the zero Policy (LAVa) leaves unset.
func (p Policy) withDefaults() Policy {
	if p.score == nil && p.scoreAll == nil {
		p.name, p.score, p.pool, p.kernel = "LAVa", scoreLAVa, PoolMax, DefaultKernel
	}
	return p
}

// LAVaUniformLayers is LAVa without dynamic layer budgets: every layer gets
// Budget − Window prefix entries per head, shared jointly by its heads. The
// paper's "−layer" ablation.
func LAVaUniformLayers() Policy {
	p := LAVa().withDefaults()
	p.name, p.layers = "LAVa-layer", UniformLayers
	return p
}

// LAVaUniformHeads is LAVa without dynamic head budgets: layers get entropy
// budgets, and every head keeps its own best b_l prefix tokens. The paper's
// "−head" ablation.
func LAVaUniformHeads() Policy {
	p := LAVa().withDefaults()
	p.name, p.heads = "LAVa-head", UniformHeads
	return p
}

// SnapKV keeps, in every head, the Budget − Window prefix tokens that the
// observation window attends to most (window attention averaged over the
// window and over the query heads of the group, then pooled), plus the
// window. Li et al., "SnapKV: LLM Knows What You are Looking for Before
// Generation", arXiv 2404.14469.
func SnapKV() Policy {
	return Policy{name: "SnapKV", score: scoreSnapKV, layers: UniformLayers, heads: UniformHeads,
		pool: PoolMax, kernel: DefaultKernel}
}

// PyramidKV scores like SnapKV but gives lower layers more entries than
// higher ones, on a linear schedule from 2b̄ − ⌊b̄/β⌋ down to ⌊b̄/β⌋ with
// b̄ = Budget − Window; β ≥ 1, default [DefaultPyramidBeta]. Cai et al.,
// "PyramidKV: Dynamic KV Cache Compression based on Pyramidal Information
// Funneling", arXiv 2406.02069.
func PyramidKV(beta float64) Policy {
	p := SnapKV()
	p.name, p.layers, p.beta, p.check = "PyramidKV", pyramidLayers, beta, checkPyramid
	return p
}

func checkPyramid(p *Policy, _ *Config) error {
	if !(p.beta >= 1 && p.beta <= math.MaxFloat64) {
		return invalidf("%s: β = %v, want a finite value ≥ 1", p.name, p.beta)
	}
	return nil
}

// AdaSnapKV is SnapKV with AdaKV's adaptive head budgets: one joint ranking
// per layer, each head guaranteed a floor of ⌊α·b_l⌋ (cap = round((1−α)·c +
// ⌊α·b_l⌋)) with α = [DefaultAdaAlpha]; [Policy.WithFloor] sets another.
// Feng et al., "Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget
// Allocation", arXiv 2407.11550.
func AdaSnapKV() Policy {
	p := SnapKV()
	p.name, p.heads, p.floor, p.alpha = "Ada-SnapKV", JointHeads, FloorAdaKV, DefaultAdaAlpha
	return p
}

// AdaPyramidKV combines PyramidKV's layer schedule with AdaKV's head
// budgets.
func AdaPyramidKV(beta float64) Policy {
	p := PyramidKV(beta)
	p.name, p.heads, p.floor, p.alpha = "Ada-PyramidKV", JointHeads, FloorAdaKV, DefaultAdaAlpha
	return p
}

// CAKE scores a token by the mean plus γ times the unbiased variance of the
// window's attention to it (per query head, pooled, then averaged over the
// group; average pooling with kernel [DefaultCAKEKernel] by default), and
// splits the total budget among layers in proportion to H_l^(1/τ1)·V_l^(1/τ2),
// the layer's attention dispersion and temporal shift, capped at each
// layer's prefix with the excess shared evenly so the total is exact. Heads
// keep uniform shares. During decoding each layer is held at its budget
// plus the window by evicting, per head, the older entry the current query
// attends to least. τ1, τ2 ≥ 10⁻³ (default [DefaultCAKETau]), 0 ≤ γ ≤ 10⁹
// (default [DefaultCAKEGamma]); the variance needs Config.Window ≥ 2. Qin
// et al., "CAKE: Cascading and Adaptive KV Cache Eviction with Layer
// Preferences", arXiv 2503.12491.
func CAKE(tau1, tau2, gamma float64) Policy {
	return Policy{name: "CAKE", score: scoreCAKE, layers: cakeLayers, heads: UniformHeads,
		decode: decodeLeastAttendedHead, pool: PoolAvg, kernel: DefaultCAKEKernel,
		tau1: tau1, tau2: tau2, gamma: gamma, check: checkCAKE}
}

func checkCAKE(p *Policy, c *Config) error {
	switch {
	case !(p.tau1 >= minCAKETau && p.tau1 <= math.MaxFloat64 && p.tau2 >= minCAKETau && p.tau2 <= math.MaxFloat64):
		return invalidf("CAKE: τ1 = %v, τ2 = %v, want finite values ≥ %v", p.tau1, p.tau2, minCAKETau)
	case !(p.gamma >= 0 && p.gamma <= maxCAKEGamma):
		return invalidf("CAKE: γ = %v, want 0 ≤ γ ≤ %v", p.gamma, maxCAKEGamma)
	case c.Window < 2:
		return invalidf("CAKE: Config.Window = %d, want ≥ 2 (the variance over the window rows divides by Window − 1)", c.Window)
	}
	return nil
}

// StreamingLLM keeps the first sinks tokens (attention sinks) and the most
// recent Budget − sinks, whatever they attend to, and keeps doing so while
// decoding by evicting the oldest non-sink entry. It needs no queries.
// sinks ≥ 0 and at most Budget − Window; default [DefaultSinks]. Xiao et
// al., "Efficient Streaming Language Models with Attention Sinks", arXiv
// 2309.17453.
func StreamingLLM(sinks int) Policy {
	return Policy{name: "StreamingLLM", score: scoreStreaming, layers: UniformLayers, heads: UniformHeads,
		queries: queriesNone, decode: decodeOldest, sinks: sinks, check: checkStreaming}
}

func checkStreaming(p *Policy, c *Config) error {
	if p.sinks < 0 || p.sinks > c.Budget-c.Window {
		return invalidf("StreamingLLM: sinks = %d, want 0 ≤ sinks ≤ Budget − Window = %d", p.sinks, c.Budget-c.Window)
	}
	return nil
}

// H2O keeps the Budget − Window "heavy hitters", the prefix tokens with the
// largest attention accumulated over every prompt query (column sums of the
// causal attention, averaged over the group, no pooling), plus the window.
// The sums are accumulated as prompt chunks are appended, so Append needs
// the queries of every prompt token. Zhang et al., "H2O: Heavy-Hitter
// Oracle for Efficient Generative Inference of Large Language Models",
// arXiv 2306.14048.
func H2O() Policy {
	return Policy{name: "H2O", score: scoreH2O, layers: UniformLayers, heads: UniformHeads,
		queries: queriesAll, accumulates: true}
}

// TOVA keeps the Budget tokens that the last prompt token attends to most,
// averaged over all query heads of the layer: one kept set shared by the
// layer's KV heads, the last token always in it. While decoding it evicts,
// after each Attend, the entry the current query attends to least, so each
// layer stays at Budget entries. Config.Window is not used. Oren et al.,
// "Transformers are Multi-State RNNs", arXiv 2401.06104.
func TOVA() Policy {
	return Policy{name: "TOVA", scoreAll: scoreTOVA, layers: UniformLayers, heads: UniformHeads,
		window: 1, decode: decodeLeastAttendedLayer}
}

// VATP scores a token by its window attention (as SnapKV) times the L1
// norm of its own value vector, so that tokens with tiny values, which
// cannot change the output much, go first. Guo et al., "Attention Score is
// not All You Need for Token Importance Indicator in KV Cache Reduction:
// Value Also Matters", arXiv 2406.12335.
func VATP() Policy {
	p := SnapKV()
	p.name, p.score = "VATP", scoreVATP
	return p
}

// Random keeps Budget − Window prefix tokens per head chosen uniformly at
// random (reproducibly from seed), plus the window: the floor any policy
// must beat. It needs no queries.
func Random(seed uint64) Policy {
	return Policy{name: "Random", score: scoreRandom, layers: UniformLayers, heads: UniformHeads,
		queries: queriesNone, seed: seed}
}

// Custom ranks tokens with s and reuses lava's budget allocation, ranking
// and compaction: layers split the total by layers, heads by heads (with
// JointHeads, [Policy.WithFloor] sets a head floor). With EntropyLayers the
// entropy of s's scores sets the split, so scores must be non-negative. The
// window is always kept. Custom scores are not pooled.
func Custom(name string, s Scorer, layers LayerAllocation, heads HeadAllocation) Policy {
	return Policy{name: name, scoreAll: scoreCustom, layers: layers, heads: heads, scorer: s, check: checkCustom}
}

func checkCustom(p *Policy, _ *Config) error {
	switch {
	case p.scorer == nil:
		return invalidf("Custom policy %q: Scorer is nil", p.name)
	case p.layers > UniformLayers || p.heads > UniformHeads:
		return invalidf("Custom policy %q: unknown layer or head allocation", p.name)
	}
	return nil
}

// WithPooling returns p smoothing its scores with the given pooling and
// odd kernel size (1 disables pooling). Every policy that pools window
// attention (LAVa and its ablations, SnapKV, PyramidKV, the Ada variants,
// VATP, CAKE) accepts it; the defaults are max pooling with kernel
// [DefaultKernel], and average pooling with kernel [DefaultCAKEKernel] for
// CAKE (the LAVa paper ran CAKE with max pooling, kernel 7).
func (p Policy) WithPooling(kind Pooling, kernel int) Policy {
	p = p.withDefaults()
	if p.kernel == 0 {
		p.misuse = invalidf("%s: WithPooling: the policy does not pool its scores", p.name)
		return p
	}
	p.pool, p.kernel = kind, kernel
	return p
}

// WithFloor returns p with a head floor for its joint head budgets: mode
// and its fraction α in [0, 1) (0 with FloorNone). It applies to the
// policies with JointHeads: LAVa, LAVa-layer, the Ada variants (default
// FloorAdaKV with [DefaultAdaAlpha]) and Custom. α = 0 with FloorAdaKV is
// the paper's mode.
func (p Policy) WithFloor(mode FloorMode, alpha float64) Policy {
	p = p.withDefaults()
	if p.heads != JointHeads {
		p.misuse = invalidf("%s: WithFloor: the policy splits head budgets uniformly, it has no head floor", p.name)
		return p
	}
	p.floor, p.alpha = mode, alpha
	return p
}

// Name returns the policy's name, as used in reports.
func (p Policy) Name() string { return p.withDefaults().name }

func (p Policy) String() string { return p.Name() }

// validate checks the policy's options and parameters against the
// configuration, naming the first bad one.
func (p *Policy) validate(c *Config) error {
	switch {
	case p.misuse != nil:
		return p.misuse
	case p.kernel != 0 && p.pool != PoolMax && p.pool != PoolAvg:
		return invalidf("%s: pooling = %d, want PoolMax or PoolAvg", p.name, int(p.pool))
	case p.kernel != 0 && (p.kernel%2 == 0 || p.kernel < 1 || p.kernel > maxKernel):
		return invalidf("%s: pooling kernel = %d, want an odd number in [1, %d]", p.name, p.kernel, maxKernel)
	case p.floor != FloorNone && p.floor != FloorAdaKV && p.floor != FloorReference:
		return invalidf("%s: floor mode = %d, want FloorNone, FloorAdaKV or FloorReference", p.name, int(p.floor))
	case !(p.alpha >= 0 && p.alpha < 1):
		return invalidf("%s: floor α = %v, want a value in [0, 1)", p.name, p.alpha)
	case p.floor == FloorNone && p.alpha != 0:
		return invalidf("%s: floor α = %v is set with FloorNone; choose FloorAdaKV or FloorReference", p.name, p.alpha)
	case p.check != nil:
		return p.check(p, c)
	}
	return nil
}

// windowOf is the number of most recent tokens the policy always keeps and
// whose queries score the rest: Config.Window, or the policy's own (TOVA's
// last token).
func (p *Policy) windowOf(c *Config) int {
	if p.window > 0 {
		return p.window
	}
	return c.Window
}

// policyNames maps the lower-case names PolicyByName accepts to the
// policies with their default parameters, in the order PolicyNames lists.
var policyNames = []struct {
	name string
	make func() Policy
}{
	{"lava", LAVa},
	{"lava-layer", LAVaUniformLayers},
	{"lava-head", LAVaUniformHeads},
	{"snapkv", SnapKV},
	{"pyramidkv", func() Policy { return PyramidKV(DefaultPyramidBeta) }},
	{"ada-snapkv", AdaSnapKV},
	{"ada-pyramidkv", func() Policy { return AdaPyramidKV(DefaultPyramidBeta) }},
	{"cake", func() Policy { return CAKE(DefaultCAKETau, DefaultCAKETau, DefaultCAKEGamma) }},
	{"streamingllm", func() Policy { return StreamingLLM(DefaultSinks) }},
	{"h2o", H2O},
	{"tova", TOVA},
	{"vatp", VATP},
	{"random", func() Policy { return Random(1) }},
}

// PolicyNames returns the names PolicyByName accepts, LAVa's first.
func PolicyNames() []string {
	names := make([]string, len(policyNames))
	for i, p := range policyNames {
		names[i] = p.name
	}
	return names
}

// PolicyByName returns the built-in policy with the given name (as
// PolicyNames lists them, any case) and its default parameters; Random's
// seed is 1. It is meant for command-line flags and configuration files.
func PolicyByName(name string) (Policy, error) {
	for _, p := range policyNames {
		if strings.EqualFold(p.name, name) {
			return p.make(), nil
		}
	}
	return Policy{}, invalidf("policy %q, want one of %s", name, strings.Join(PolicyNames(), ", "))
}
