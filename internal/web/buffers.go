package web

import (
	"bytes"
	"sync"
)

// maxPooledBuffer is the largest buffer kept for reuse: a page is a few
// KB; an odd large one is left to the collector rather than held.
const maxPooledBuffer = 64 << 10

// bufferPool recycles the buffers a page is rendered into and then held in
// until its session is saved. Growing both from empty on every request was
// a fifth of what a page view allocated, and the collector's work with it.
type bufferPool struct{ pool sync.Pool }

func (p *bufferPool) get() *bytes.Buffer {
	if b, ok := p.pool.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

// put takes b back; b must not be used afterwards.
func (p *bufferPool) put(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuffer {
		return
	}
	b.Reset()
	p.pool.Put(b)
}
