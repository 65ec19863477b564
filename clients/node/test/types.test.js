// The shipped TypeScript declarations compile against a typical use
// (test/types/check.ts) under strict mode.

import {test} from 'node:test'
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {createRequire} from 'node:module'
import {dirname, join} from 'node:path'

test('the .d.ts files type-check a typical Express app', () => {
  const lib = createRequire(import.meta.url).resolve('typescript') // …/typescript/lib/typescript.js
  const tsc = join(dirname(lib), '..', 'bin', 'tsc')
  try {
    execFileSync(process.execPath, [tsc, '-p', new URL('./types', import.meta.url).pathname], {encoding: 'utf8'})
  } catch (err) {
    assert.fail(`tsc: ${err.stdout}${err.stderr}`)
  }
})
