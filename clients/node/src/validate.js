// Session-token validation for the middleware: online (one
// POST /v1/sessions/verify per request). The cached validator in cache.js
// has the same shape.

import {unmask} from './csrf.js'

/** Validates every session token with latch (no cache). */
export class OnlineValidator {
  #client
  constructor(client) { this.#client = client }

  /** Answers {session, csrfKey}; rejects with latch's LatchError. */
  async validate(token, {ip, userAgent} = {}) {
    const v = await this.#client.verifySession(token, {ip, userAgent})
    return {session: v.session, csrfKey: v.csrfToken ? unmask(v.csrfToken) : null}
  }

  forget() {}
  close() {}
}
