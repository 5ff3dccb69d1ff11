package main

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"

	"github.com/lavakv/lava"
	"github.com/lavakv/lava/examples/internal/modelfile"
	"github.com/lavakv/lava/examples/llama"
)

type storageReportInput struct {
	command, model, promptDesc string
	m                          *llama.Model
	prompts                    []prompt
	s                          settings
	res                        storageResults
}

// storageRow is one row of the storage tables: an entry in a type.
type storageRow struct{ t, e int }

// storageMetric is one table of the storage report.
type storageMetric struct {
	title, about string
	format       string
	better       int
	// value is the metric of prompt p's cell c, NaN where the prompt has
	// nothing to measure.
	value  func(p int, c cell) float64
	note   func(in reportInput) string
	paired bool // also the differences against float32 storage
}

// storageMetrics are the tables of the storage report; fullF32 are the
// float32 full cache's bytes of each prompt.
func storageMetrics(s settings, fullF32 []float64) []storageMetric {
	return []storageMetric{
		{title: "KL(float32 full ‖ compressed), nats per token", format: "%.4f", better: -1, paired: true,
			about: fmt.Sprintf("Mean over the T = %d teacher-forced steps of the KL divergence of the cache's next-token distribution from the float32 full cache's, as in eval.md.", s.steps),
			value: func(_ int, c cell) float64 { return c.kl }},
		{title: "Top-1 agreement", format: "%.3f", better: +1,
			about: "Fraction of the T steps whose most likely next token is the float32 full cache's.",
			value: func(_ int, c cell) float64 { return c.agree }},
		{title: "Long-range recall: log-probability drop at copy steps, nats", format: "%.3f", better: -1, note: copyStepsNote,
			about: "The copy steps of eval.md (prompts without one left out): tokens that copy a bigram from before the observation window.",
			value: func(_ int, c cell) float64 { return c.recallDrop }},
		{title: "Long-range recall: top-1 kept at copy steps", format: "%.3f", better: +1, note: copyStepsNote,
			about: "Fraction of the copy steps whose top-1 is the float32 full cache's.",
			value: func(_ int, c cell) float64 { return c.recallTop1 }},
		{title: "Key/value bytes kept, % of the float32 full cache", format: "%.2f", better: 0,
			about: "Bytes the cache holds right after Compress (lava.Report BytesAfter), as stored (blocks with their scales for Q8_0 and Q4_0), against the float32 full prompt's.",
			value: func(p int, c cell) float64 { return 100 * float64(c.kept) / fullF32[p] }},
	}
}

// storageEntryBytes is the bytes one entry (a key and a value) of one KV
// head takes when stored as p at head dimension d.
func storageEntryBytes(p storagePair, d int) (int64, error) {
	c, err := lava.New(lava.Config{Layers: 1, Heads: 1, KVHeads: 1, HeadDim: d, Budget: 2, Window: 1, KeyElement: p.k, ValueElement: p.v})
	if err != nil {
		return 0, err
	}
	return c.EntryBytes(), nil
}

// writeStorageReport writes storage.md and the storage-kl plots to dir.
func writeStorageReport(dir string, in storageReportInput) (string, []string, error) {
	var w bytes.Buffer
	s, ss, m, res := in.s, in.s.storage, in.m, in.res
	np := len(in.prompts)
	streamHeader(&w, "Storage types and the equal-bytes frontier", in.command, in.model, m)
	fmt.Fprintf(&w, "- Prompts: %s.\n", in.promptDesc)
	fmt.Fprintf(&w, "- The reference is the float32 full cache: each prompt prefilled once in float32 and its greedy continuation decoded "+
		"(c₀ from the prefill's logits, then T = %d measured steps), as in eval.md. Then, for every storage type, the prompt is prefilled "+
		"again into a cache of that type, so that every layer's attention over the prompt reads the keys and values as they are stored, "+
		"as an engine's prefill would; every policy × budget compresses its own copy of that cache (`KVCache.CloneWith`, same types) and "+
		"teacher-forces the float32 continuation. The **full cache** rows are the uncompressed cache of each type: quantisation alone.\n", s.steps)
	d := m.HeadDim
	f32, err := storageEntryBytes(storagePair{}, d)
	if err != nil {
		return "", nil, err
	}
	var sizes []string
	for _, t := range ss.types {
		b, err := storageEntryBytes(t, d)
		if err != nil {
			return "", nil, err
		}
		sizes = append(sizes, fmt.Sprintf("%v %d (%.2f %%)", t, b, 100*float64(b)/float64(f32)))
	}
	fmt.Fprintf(&w, "- Storage types, written keys/values when they differ, with the bytes of one entry (key + value) of one KV head at d = %d "+
		"and their share of float32's: %s.\n", d, strings.Join(sizes, ", "))
	fmt.Fprintf(&w, "- Window w = %d; policy parameters as in eval.md (library defaults). Budget B: average entries kept per KV head per layer, window included.\n", s.window)
	fmt.Fprintf(&w, "- Cells: mean ± half-width of the two-sided 95 %% confidence interval over prompts, t·sd/√n with Student's t at n − 1 degrees of freedom. "+
		"**Bold**: the best policy and type in the column (the full cache rows excluded). Rows share prompts, so differences between rows are paired.\n\n")

	var rows []storageRow
	var names []string
	var ref []bool
	for e, en := range ss.entries {
		for t, ty := range ss.types {
			rows = append(rows, storageRow{t, e})
			names = append(names, fmt.Sprintf("%s, %v", en.name, ty))
			ref = append(ref, en.full)
		}
	}
	var cols []string
	for _, b := range s.budgets {
		cols = append(cols, fmt.Sprintf("B = %d", b))
	}
	// The float32 full cache's bytes, per prompt.
	fullF32 := make([]float64, np)
	for p := range fullF32 {
		fullF32[p] = float64(res.cells[p][0][0][0].full)
	}
	budgetIn := reportInput{prompts: in.prompts, s: s, res: results{refs: res.refs}}
	for _, mt := range storageMetrics(s, fullF32) {
		value := mt.value
		sums := make([][]summary, len(rows))
		for i, r := range rows {
			for b := range s.budgets {
				sums[i] = append(sums[i], summarize(dropNaN(res.values(value, r, b))))
			}
		}
		fmt.Fprintf(&w, "## %s\n\n%s\n\n", mt.title, mt.about)
		if mt.note != nil {
			fmt.Fprintf(&w, "%s\n\n", mt.note(budgetIn))
		}
		grid(&w, cols, names, boldBest(sums, ref, mt.format, mt.better))
		if !mt.paired || len(ss.types) < 2 || np < 2 {
			continue
		}
		fmt.Fprintf(&w, "Paired difference, type − float32 for the same policy and budget on the same prompts (mean ± 95 %% CI; "+
			"an interval excluding 0 is a difference the prompts support):\n\n")
		var prows []storageRow
		var pnames []string
		for i, r := range rows {
			if r.t != 0 {
				prows, pnames = append(prows, r), append(pnames, names[i])
			}
		}
		grid(&w, cols, pnames, func(i, b int) string {
			x, y := res.values(value, prows[i], b), res.values(value, storageRow{0, prows[i].e}, b)
			var dd []float64
			for p := range x {
				if !math.IsNaN(x[p]) && !math.IsNaN(y[p]) {
					dd = append(dd, x[p]-y[p])
				}
			}
			return signedCellText(summarize(dd), "%+"+mt.format[1:], mt.format)
		})
	}

	fmt.Fprintf(&w, "## KL of the prompt's last logits (c₀), nats\n\n"+
		"KL(float32 ‖ type) of the next-token distribution at the end of each type's own prefill, before any eviction: how much storing the "+
		"prompt's keys and values in that type changes what the prefill computes. Eviction cannot change it (eval.md), so it is the same for every policy and budget.\n\n")
	fmt.Fprintf(&w, "| storage | KL of c₀ |\n|---|---:|\n")
	for t, ty := range ss.types {
		xs := make([]float64, np)
		for p := range xs {
			xs[p] = res.klFirst[p][t]
		}
		fmt.Fprintf(&w, "| %v | %s |\n", ty, cellText(summarize(xs), "%.5f"))
	}
	fmt.Fprintln(&w)

	writeFrontier(&w, in)

	writeStorageLimits(&w, in, f32)

	// The tables first: a plot that fails must not lose the run's results.
	path, err := writeFile(dir, "storage.md", w.Bytes())
	if err != nil {
		return "", nil, err
	}
	var plots []string
	for e, en := range ss.entries {
		if en.full {
			continue
		}
		name := "storage-kl"
		if len(plots) > 0 {
			name += "-" + en.key
		}
		drawn, err := storageChart(in, e).draw(dir, name)
		if err != nil {
			return path, plots, err
		}
		if drawn {
			plots = append(plots, name)
		}
	}
	return path, plots, nil
}

// values returns a metric's per-prompt values of one row at budget index
// b.
func (res storageResults) values(value func(p int, c cell) float64, r storageRow, b int) []float64 {
	xs := make([]float64, len(res.cells))
	for p := range xs {
		xs[p] = value(p, res.cells[p][r.t][r.e][b])
	}
	return xs
}

// meanKept is the mean over prompts of the bytes a row keeps at budget b.
func meanKept(res storageResults, r storageRow, b int) float64 {
	var xs []float64
	for p := range res.cells {
		xs = append(xs, float64(res.cells[p][r.t][r.e][b].kept))
	}
	return mean(xs)
}

func meanKL(res storageResults, r storageRow, b int) float64 {
	var xs []float64
	for p := range res.cells {
		xs = append(xs, res.cells[p][r.t][r.e][b].kl)
	}
	return mean(xs)
}

// writeFrontier writes the equal-bytes frontier: at each byte level, for
// each policy, the storage type and budget whose mean KL is lowest among
// those that keep no more bytes on average.
func writeFrontier(w *bytes.Buffer, in storageReportInput) {
	s, ss, res := in.s, in.s.storage, in.res
	// The levels: the float32 cache of the first policy (LAVa by default)
	// at every budget, then the float32 full cache.
	lead := 1
	for e, en := range ss.entries {
		if en.key == "lava" {
			lead = e
			break
		}
	}
	type level struct {
		name  string
		bytes float64
		b     int // the budget index, −1 for the full cache
	}
	var levels []level
	for b, budget := range s.budgets {
		levels = append(levels, level{fmt.Sprintf("f32 %s B = %d", ss.entries[lead].name, budget), meanKept(res, storageRow{0, lead}, b), b})
	}
	levels = append(levels, level{"f32 full cache", meanKept(res, storageRow{0, 0}, 0), -1})
	klValue := func(_ int, c cell) float64 { return c.kl }

	fmt.Fprintf(w, "## Equal-bytes frontier\n\n"+
		"Byte levels: the mean bytes the float32 %s cache keeps at each budget, and the float32 full cache's. At each level, for each policy, "+
		"the (storage type, budget) with the lowest mean KL among all that policy's runs, and the uncompressed caches of the quantised types "+
		"(budget **full**), that keep no more bytes on average than the level; the float32 full cache, the reference itself (KL 0), is not a candidate. "+
		"**f32 at this level** is the same policy stored as float32 at the level's budget (for the last level, the reference); "+
		"the paired difference is best − f32 on the same prompts. KiB: mean over prompts, 1 KiB = 1024 bytes. "+
		"The candidates are the budgets measured: at a level above the largest budget's bytes in a type, that type's larger budgets are missing. "+
		"Every policy is shown at the same levels; a policy that keeps a little more than %s at equal B (SnapKV keeps exactly B per head, "+
		"LAVa's allocation a few entries less) has its own float32 run slightly above the level, where it is no candidate.\n\n", ss.entries[lead].name, ss.entries[lead].name)
	for e, en := range ss.entries {
		if en.full {
			continue
		}
		fmt.Fprintf(w, "### %s\n\n| level | level KiB | best: type, budget | its KiB | its KL | f32 at this level: KL | best − f32, paired |\n|---|---:|---|---:|---:|---:|---:|\n", en.name)
		for _, lv := range levels {
			bestKL, bestBytes := math.Inf(1), math.Inf(1)
			var best storageRow
			bestB := -1
			consider := func(r storageRow, b int) {
				kb, kk := meanKept(res, r, b), meanKL(res, r, b)
				if kb > lv.bytes*(1+1e-12) {
					return
				}
				if kk < bestKL || (kk == bestKL && kb < bestBytes) {
					bestKL, bestBytes, best, bestB = kk, kb, r, b
				}
			}
			for t := range ss.types {
				for b := range s.budgets {
					consider(storageRow{t, e}, b)
				}
				if t != 0 {
					consider(storageRow{t, 0}, 0)
				}
			}
			if bestB < 0 {
				fmt.Fprintf(w, "| %s | %.1f | none | | | | |\n", lv.name, lv.bytes/1024)
				continue
			}
			budget := "full"
			if best.e != 0 {
				budget = fmt.Sprintf("B = %d", s.budgets[bestB])
			}
			x := res.values(klValue, best, bestB)
			y := make([]float64, len(x)) // the reference: 0
			if lv.b >= 0 {
				y = res.values(klValue, storageRow{0, e}, lv.b)
			}
			dd := make([]float64, len(x))
			for p := range x {
				dd[p] = x[p] - y[p]
			}
			bold := func(t string) string { return "**" + t + "**" }
			if best.t == 0 {
				bold = func(t string) string { return t }
			}
			fmt.Fprintf(w, "| %s | %.1f | %s | %.1f | %s | %s | %s |\n", lv.name, lv.bytes/1024, bold(fmt.Sprintf("%v, %s", ss.types[best.t], budget)),
				bestBytes/1024, cellText(summarize(x), "%.4f"), cellText(summarize(y), "%.4f"), signedCellText(summarize(dd), "%+.4f", "%.4f"))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Bold: the best is not float32 storage. The plot storage-kl (png, svg) draws every type's KL against its bytes for %s; "+
		"storage-kl-<policy> the others. Each curve's points are the budgets, the last point of a quantised type its uncompressed cache "+
		"(the float32 full cache has KL 0 and is off the log scale); the frontier is the lower envelope left of each level.\n\n", ss.entries[1].name)
}

// writeStorageLimits writes what this model can and cannot show about
// storage types, with the byte ratios at its head dimension and at 128.
func writeStorageLimits(w *bytes.Buffer, in storageReportInput, f32 int64) {
	m := in.m
	const big = 128
	f32Big, _ := storageEntryBytes(storagePair{}, big)
	ratio := func(e lava.Element, d int, of int64) string {
		b, err := storageEntryBytes(storagePair{e, e}, d)
		if err != nil {
			return "?"
		}
		return fmt.Sprintf("%d bytes, %.1f %%", b/2, 100*float64(b)/float64(of))
	}
	fmt.Fprintf(w, "## What this model can and cannot show\n\n")
	fmt.Fprintf(w, "stories260K has %d layers of %d KV heads with head dimension d = %d and was trained on %d-token stories. "+
		"It can show, on a real model and real text with intervals over prompts, that each storage type runs end to end "+
		"(the prefill's attention, every policy's scores and the decode read the stored keys and values), how far quantisation alone moves "+
		"the output (the full cache rows), whether its error adds to the eviction's at each budget, and, for this model, which "+
		"(type, budget) keeps the output closest at equal bytes; the byte counts are the library's real stored bytes, exact at any size.\n\n",
		m.Layers, m.KVHeads, m.HeadDim, modelfile.TrainedContext)
	fmt.Fprintf(w, "It cannot show what a large model does. At d = %d a Q8_0 row is one block of %d elements with a 2-byte scale (%s of float32's row), "+
		"not four blocks of 32 (d = %d: %s); a Q4_0 row is %s here against %s at d = %d; float16 is half at any d. "+
		"So at equal bytes a quantised cache here keeps fewer entries than on a large model, and the frontier shifts toward quantisation at large d. "+
		"The noise differs too: a scale per 8 elements follows each row's magnitude more closely than one per 32, scores q·k/√d sum d rounded "+
		"products, and how that noise compares with the gaps between the scores that decide what is evicted, and how it compounds through %d layers "+
		"instead of 32 or more, depends on d, on the depth and on the activations (large models have outlier channels this one may lack). "+
		"The KL measured here is for this model only, and nothing here is about speed: the whole cache is a few hundred KiB.\n",
		m.HeadDim, min(m.HeadDim, 32), ratio(lava.Q8_0, m.HeadDim, f32), big, ratio(lava.Q8_0, big, f32Big),
		ratio(lava.Q4_0, m.HeadDim, f32), ratio(lava.Q4_0, big, f32Big), big, m.Layers)
}

// storageChart is the KL of policy entry e against the mean bytes kept,
// one line per storage type, float32 bold.
func storageChart(in storageReportInput, e int) lineChart {
	s, ss, res := in.s, in.s.storage, in.res
	// Long axis labels shrink gonum's axes: the details are in the title
	// and in storage.md.
	c := lineChart{title: fmt.Sprintf("%s: KL(f32 full ‖ cache) against the bytes kept, by storage type", ss.entries[e].name),
		xLabel: "KiB kept, mean over prompts", yLabel: "KL, nats per token", logX: true, logY: true}
	for t, ty := range ss.types {
		sr := series{name: ty.String(), bold: t == 0}
		add := func(r storageRow, b int) {
			if k := meanKL(res, r, b); k > 0 {
				sr.xys = append(sr.xys, plotter.XY{X: meanKept(res, r, b) / 1024, Y: k})
			}
		}
		for b := range s.budgets {
			add(storageRow{t, e}, b)
		}
		add(storageRow{t, 0}, 0)
		c.series = append(c.series, sr)
	}
	// Ticks at the powers of two (x) and ten (y) within the points' range:
	// gonum leaves room for labels beyond it, and its log ticks print
	// 9.999999999999999e-05.
	xlo, xhi, ylo, yhi := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, sr := range c.series {
		for _, xy := range sr.xys {
			xlo, xhi, ylo, yhi = min(xlo, xy.X), max(xhi, xy.X), min(ylo, xy.Y), max(yhi, xy.Y)
		}
	}
	if xlo < xhi {
		for x := math.Exp2(math.Ceil(math.Log2(xlo))); x <= xhi; x *= 2 {
			c.xTicks = append(c.xTicks, plot.Tick{Value: x, Label: strconv.FormatFloat(x, 'f', -1, 64)})
		}
	}
	if ylo < yhi {
		for k := math.Ceil(math.Log10(ylo)); k <= math.Log10(yhi); k++ {
			y := math.Pow10(int(k))
			c.yTicks = append(c.yTicks, plot.Tick{Value: y, Label: strconv.FormatFloat(y, 'g', -1, 64)})
		}
	}
	return c
}
