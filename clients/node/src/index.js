// @latch-sessions/node: a client for latch serve, and Express middleware.
//
//   import {LatchClient} from '@latch-sessions/node'
//   import {latch} from '@latch-sessions/node/express'
//
// Security model: session tokens live only in an HttpOnly, Secure,
// SameSite=Lax __Host- cookie; tokens and the API key never appear in an
// error, a log line or a URL; any failure to reach latch fails closed
// (503), never open. DPoP-bound tokens (RFC 9449) are accepted only with a
// proof by their key.

export {LatchClient} from './client.js'
export {DPoPKey, LocalReplayCache, thumbprint, verifyProof} from './dpop.js'
export {
  LatchError, LatchProblemError, LatchUnavailableError, LatchConfigError, LatchCSRFError, LatchUnauthenticatedError,
  LatchDPoPError, LatchDPoPNonceError, LatchInsufficientAuthError,
} from './errors.js'
