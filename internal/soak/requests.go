package soak

import (
	"slices"
	"sort"
	"time"

	"github.com/latch-sessions/latch/internal/faults"
)

// AddRequests fills each sample's request figures from the load's history:
// the requests that finished in the interval ending at that sample (after
// the previous one; the first sample only starts the first interval), their client-side latency p50 and p99, and how many
// were errors (a 5xx or no answer; a 4xx is an answer the load expected,
// such as a refused revoked session). Samples must be in time order.
func AddRequests(samples []Sample, ops []faults.Op) {
	lat := make([][]time.Duration, len(samples))
	for i := range ops {
		op := &ops[i]
		// The first sample whose time is at or after the op's end.
		k := sort.Search(len(samples), func(j int) bool { return !samples[j].At.Before(op.End) })
		if k == 0 || k == len(samples) {
			continue // before the first reading (which starts the first interval) or after the last
		}
		lat[k] = append(lat[k], op.End.Sub(op.Start))
		if !op.Answered() || op.Status >= 500 {
			samples[k].Errors++
		}
	}
	for i, l := range lat {
		if i > 0 {
			samples[i].Interval = samples[i].At.Sub(samples[i-1].At)
		}
		samples[i].Requests = len(l)
		samples[i].ReqP50, samples[i].ReqP99 = percentile(l, 0.50), percentile(l, 0.99)
	}
}

// percentile is the nearest-rank q-percentile of d (sorted in place).
func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(q*float64(len(d))+0.5) - 1
	return d[min(max(i, 0), len(d)-1)]
}
