// Heartbeats carry the age of the replica's last proof of its store link
// (docs/protocol.md §3, ": hb N"); only a well-formed one proves anything.

import {test} from 'node:test'
import assert from 'node:assert/strict'
import {heartbeatAge} from '../src/cache.js'

test('heartbeatAge parses ": hb N" and nothing else', () => {
  assert.equal(heartbeatAge(': hb 0'), 0)
  assert.equal(heartbeatAge(': hb 37'), 37)
  for (const proves of [': hb', ': hb -5', ': hb 1e3', ': hb 9999999999', ': keepalive', ':hb 3', ': hb 3 ']) {
    assert.equal(heartbeatAge(proves), undefined, proves)
  }
})
