package gateway

import "sync/atomic"

// CountCopyBuffers empties the proxy's buffer pool, then counts the buffers
// the pool makes until restore is called. No request may be in flight.
func CountCopyBuffers() (made func() int64, restore func()) {
	var count atomic.Int64
	original := copyBufferPool.New
	copyBufferPool.New = func() any { count.Add(1); return original() }
	for count.Load() == 0 {
		copyBufferPool.Get() // the first buffer it has to make: the pool is empty
	}
	count.Store(0)
	return count.Load, func() { copyBufferPool.New = original }
}
