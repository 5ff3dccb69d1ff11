// Package lava is a key/value cache for LLM inference that evicts the
// entries that matter least, so that long prompts are served in a fraction
// of the memory. Its default policy is LAVa (Shen et al., "LAVa: Layer-wise
// KV Cache Eviction with Dynamic Budget Allocation", arXiv 2509.09754).
//
// # What LAVa does and why
//
// After the prompt is processed, the last Window prompt tokens (the
// observation window) look back at the rest: each prefix token's score is
// the attention the window's queries pay it, averaged over the window,
// smoothed along the token axis, maximised over the query heads that share
// a KV head, and multiplied by the largest L1 norm of that head's values.
// The paper shows that this score bounds how much evicting the token can
// change the layer's attention output, so the tokens to evict from a layer
// are the lowest-scoring ones across all its heads: one joint ranking per
// layer, which gives busy heads more entries than quiet ones (dynamic head
// budgets). Layers whose scores are spread out (high entropy) need more
// entries than layers that attend to a few tokens, so the total budget is
// split among layers in proportion to the entropy of their scores (dynamic
// layer budgets). The window tokens are always kept.
//
// # The budget
//
// [Config].Budget is B, the paper's unit: the average number of entries
// kept per KV head per layer, window included. A cache compressed to B
// holds about Layers·KVHeads·B entries however long the prompt was; each
// layer gets b_l prefix entries per head on average (Σ b_l ≤ L·(B−Window)),
// and within a layer each head keeps what it wins. A layer whose prompt has
// at most B tokens is kept whole.
//
// # Prefill, Compress, decode
//
// An engine appends each layer's post-RoPE queries, keys and values with
// [KVCache.Append] as it runs the prompt, calls [KVCache.Compress], then
// decodes: for every new token it appends the token's key and value to each
// layer and computes that layer's attention with [KVCache.Attend], which
// handles the per-head variable lengths that eviction leaves. Only the
// queries of the last Window tokens are needed; others may be nil. Queries
// may be given to Append or to Attend, which keeps those it is given.
// Positions are never renumbered: [KVCache.View] returns every kept entry
// with its original position, and new tokens take positions counting on
// from the number of tokens ever appended.
//
// # The life of a sequence: chunks, turns, decoding
//
// Compress may run at any time, and the cache stays within budget for the
// whole life of a sequence:
//
//   - Chunked prefill: append a chunk to every layer, computing each
//     layer's attention for the chunk with Attend (it takes the queries of
//     several tokens and masks each to the entries at positions up to its
//     own), then Compress. Each layer then holds about Budget plus one chunk
//     per head, so the peak is bounded by the budget, not by the prompt.
//   - A later turn: append its tokens like a chunk and Compress: the new
//     window (the new question) re-scores what is held. What an earlier
//     Compress evicted is gone.
//   - Decoding: with [Config].DecodeSlack S > 0, Attend compresses the cache
//     back to Budget once it holds more than Budget + S entries per head,
//     one scoring per about S tokens. Never Compress between a token's
//     Append and its own Attend: its queries must see the cache it belongs
//     to.
//
// Each Compress scores the layers that received tokens since they were last
// scored, over what they hold (the window's attention to the held entries,
// causal by position), splits the total budget over every scored layer from
// its latest scores, and trims. One Compress after one whole prompt gives
// exactly the paper's result; Compress with nothing new does nothing.
//
// # The cascade
//
// Compress may also run after each layer's prompt is appended, as the
// official implementation does, so that the full cache of all layers is
// never held at once: each call scores the new layer, recomputes every
// layer's budget from the entropies seen so far and trims earlier layers to
// their smaller shares. Because budgets only shrink and rankings are nested,
// the cascade ends with exactly the kept sets of one Compress at the end.
//
// # Policies
//
// [Config].Policy selects the ranking and budget split; LAVa is the
// default. The baselines LAVa is measured against share its window
// attention, pooling, ranking and compaction: [SnapKV], [PyramidKV],
// [AdaSnapKV], [AdaPyramidKV], [CAKE], [StreamingLLM], [H2O], [TOVA],
// [VATP], [Random], and the ablations [LAVaUniformLayers] and
// [LAVaUniformHeads]. [Custom] plugs in a [Scorer] of your own and reuses
// the rest. StreamingLLM, TOVA and CAKE keep evicting while decoding, as
// their papers do; the others never evict decode tokens.
//
// A policy carries its own options: [Policy.WithPooling] sets the pooling
// of every policy that pools window attention (default max pooling, kernel
// 7; CAKE average pooling, kernel 5), and [Policy.WithFloor] the head floor
// of every policy with joint head budgets.
//
// # Head floors
//
// The paper lets a head lose all its prefix tokens (FloorNone, LAVa's
// default). AdaKV guarantees each head a fraction α of the layer's per-head
// budget (FloorAdaKV, the Ada policies' default with α = 0.2).
// FloorReference reproduces the official LAVa code, whose floor is computed
// once from B including the window; it keeps a few percent more entries
// than the budget and exists to reproduce published numbers. For example,
// LAVa with AdaKV's floor is lava.LAVa().WithFloor(lava.FloorAdaKV, 0.2).
//
// # Memory
//
// Compress moves kept rows into storage sized for them (plus
// [Config].DecodeReserve decode tokens) when that frees at least half of a
// head's storage, so evicted memory returns to the Go heap; otherwise it
// compacts in place and the freed capacity serves decode appends. Storage
// that runs out doubles; [KVCache.Reserve] makes room for a prompt of known
// length, so that appended in chunks it is stored once. Keys and
// values may each be stored as float16 ([Float16], half the memory) or in
// llama.cpp's 8-bit and 4-bit blocks ([Q8_0], [Q4_0]: 26.6 % and 14.1 % of
// float32 at HeadDim 128), set by [Config].KeyElement and ValueElement;
// scoring and attention read the stored values, so eviction sees what
// decoding sees.
// [KVCache.Bytes] and the [Report] of each Compress give the bytes held.
//
// # Around the cache
//
// [KVCache.Truncate] rolls every layer back to a position (speculative
// decoding, a failed step, regeneration) and [KVCache.CommonTokens] notices
// a step that failed part-way. A cache saves and restores itself with
// [KVCache.MarshalBinary] and [KVCache.UnmarshalBinary] (or WriteTo and
// ReadFrom, streaming) in a versioned, checksummed format, and
// [KVCache.Reset] empties it for the next sequence, keeping its storage.
// [KVCache.Bytes] counts the key and value bytes held, and
// [KVCache.AllocatedBytes] what the cache keeps allocated.
// [HeadView.AppendKeys] widens stored rows to float32.
//
// The algorithm, as implemented, is written out in docs/algorithm.md of the
// repository, and the file format in docs/format.md.
//
// A KVCache is not safe for concurrent use; within one call, Compress and
// Attend use up to [Config.Workers] goroutines (GOMAXPROCS by default), with
// bit-identical results for any count. Errors from bad
// input wrap [ErrInvalid] and leave the cache unchanged: Append rejects
// NaN, infinite and (with float16 or quantised storage) out-of-range keys
// and values.
package lava
