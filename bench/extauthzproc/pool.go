package extauthzproc

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/extauthz/extauthz/capability"
)

// Pool is a set of distinct capabilities sealed before a benchmark starts, so
// that sending one costs the load generator an index and nothing else.
//
// It holds them as one large string per sealing worker plus the end offset
// of each capability: a million capabilities of about 500 bytes are a few
// allocations of pointer-free memory (nothing for the garbage collector to
// scan) and 8 bytes of bookkeeping each, instead of a million strings.
type Pool struct {
	chunks []poolChunk
	per    int // capabilities per chunk; the last may hold fewer
	n      int
}

type poolChunk struct {
	data string
	ends []int // ends[j] is where capability j of the chunk ends in data
}

// Len is the number of capabilities in the pool.
func (p *Pool) Len() int { return p.n }

// Bytes is the memory the pool holds, about.
func (p *Pool) Bytes() int64 {
	var b int64
	for _, c := range p.chunks {
		b += int64(len(c.data) + 8*len(c.ends))
	}
	return b
}

// At returns capability i, 0 ≤ i < Len. It does not allocate: the result
// shares the pool's memory.
func (p *Pool) At(i int) string {
	c := &p.chunks[i/p.per]
	j := i % p.per
	start := 0
	if j > 0 {
		start = c.ends[j-1]
	}
	return c.data[start:c.ends[j]]
}

// SealPool seals n capabilities with codec, capability i for subject(i),
// each valid for ttl (0: capability.MaxLifetime) from now, on one worker per
// CPU. Capabilities are distinct if the subjects are (and in any case, with
// overwhelming probability, by their random IVs). progress, if not nil, is
// called about once a second with the number sealed so far. It stops early,
// with ctx's error, if ctx is done.
func SealPool(ctx context.Context, codec *capability.Codec, n int, ttl time.Duration,
	subject func(i int) capability.Subject, progress func(sealed int)) (*Pool, error) {
	if n < 1 {
		return nil, errors.New("extauthzproc: a pool needs at least one capability")
	}
	workers := min(runtime.GOMAXPROCS(0), n)
	per := (n + workers - 1) / workers
	p := &Pool{chunks: make([]poolChunk, (n+per-1)/per), per: per, n: n}
	var sealed atomic.Int64
	errs := make([]error, len(p.chunks))
	var wg sync.WaitGroup
	for w := range p.chunks {
		lo, hi := w*per, min((w+1)*per, n)
		wg.Go(func() {
			p.chunks[w], errs[w] = sealChunk(ctx, codec, lo, hi, ttl, subject, &sealed)
		})
	}
	done := make(chan struct{})
	var reporter sync.WaitGroup
	if progress != nil {
		reporter.Go(func() {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					progress(int(sealed.Load()))
				}
			}
		})
	}
	wg.Wait()
	close(done)
	reporter.Wait() // progress is not called after SealPool returns
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// sealChunk seals capabilities lo to hi-1 into one string.
func sealChunk(ctx context.Context, codec *capability.Codec, lo, hi int, ttl time.Duration,
	subject func(int) capability.Subject, sealed *atomic.Int64) (poolChunk, error) {
	c := poolChunk{ends: make([]int, 0, hi-lo)}
	var b strings.Builder
	for i := lo; i < hi; i++ {
		if (i-lo)%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return poolChunk{}, err
			}
		}
		tok, err := codec.Seal(subject(i), ttl)
		if err != nil {
			return poolChunk{}, err
		}
		if i == lo {
			// Capabilities of one subject shape have one length: size
			// the chunk once instead of doubling it as it fills.
			b.Grow(len(tok) * (hi - lo))
		}
		b.WriteString(tok)
		c.ends = append(c.ends, b.Len())
		sealed.Add(1)
	}
	c.data = b.String()
	return c, nil
}
