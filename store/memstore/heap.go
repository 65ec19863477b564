package memstore

// The expiry index is a binary min-heap of items by deadline, written out
// rather than through container/heap so that it neither boxes items nor
// calls through an interface. Each item knows its position (heapIdx), so a
// moved deadline is fixed in O(log n). sh.mu is held for all of these.

func (sh *shard) push(it *item) {
	it.heapIdx = len(sh.expiry)
	sh.expiry = append(sh.expiry, it)
	sh.up(it.heapIdx)
}

// remove deletes the item at position i.
func (sh *shard) remove(i int) {
	h := sh.expiry
	last := len(h) - 1
	if i != last {
		sh.swap(i, last)
	}
	h[last].heapIdx = -1
	h[last] = nil
	sh.expiry = h[:last]
	if i != last {
		sh.fix(i)
	}
	// Give memory back after a mass expiry.
	if c := cap(sh.expiry); c > 1024 && len(sh.expiry) < c/4 {
		sh.expiry = append(make([]*item, 0, c/2), sh.expiry...)
	}
}

// fix restores the heap after the item at position i changed its deadline.
func (sh *shard) fix(i int) {
	if !sh.down(i) {
		sh.up(i)
	}
}

func (sh *shard) less(i, j int) bool {
	return sh.expiry[i].deadline.Before(sh.expiry[j].deadline)
}

func (sh *shard) swap(i, j int) {
	h := sh.expiry
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}

func (sh *shard) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !sh.less(j, i) {
			break
		}
		sh.swap(i, j)
		j = i
	}
}

// down sifts the item at i0 down and reports whether it moved.
func (sh *shard) down(i0 int) bool {
	n := len(sh.expiry)
	i := i0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && sh.less(r, l) {
			j = r
		}
		if !sh.less(j, i) {
			break
		}
		sh.swap(i, j)
		i = j
	}
	return i > i0
}
