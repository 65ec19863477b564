// @latch-sessions/node: a client for latch serve, and Express middleware.
//
//   import {LatchClient} from '@latch-sessions/node'
//   import {latch} from '@latch-sessions/node/express'
//
// Security model: session tokens live only in an HttpOnly, Secure,
// SameSite=Lax __Host- cookie; tokens and the API key never appear in an
// error, a log line or a URL; any failure to reach latch fails closed
// (503), never open.

export {LatchClient} from './client.js'
export {
  LatchError, LatchProblemError, LatchUnavailableError, LatchConfigError, LatchCSRFError, LatchUnauthenticatedError,
} from './errors.js'
