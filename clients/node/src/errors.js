// Errors of @latch-sessions/node. Every error is a LatchError with a stable
// `code`: branch on `err.code` (or `instanceof`), never on the message.
//
// No error ever carries a token, the API key or a request body: messages
// are built from fixed text and from latch's problem documents, which latch
// guarantees contain no secret.

/** The base class. `code` is stable; `message` is for people. */
export class LatchError extends Error {
  /** @type {string} */
  code = 'latch'
  constructor(message, options) {
    super(message, options)
    this.name = new.target.name
  }
}

/**
 * latch answered with a problem document (RFC 9457). `code` is the
 * problem's code: bad_request, unauthorized, invalid_token, expired,
 * revoked, refresh_reuse, csrf, not_found, conflict, too_large,
 * rate_limited, internal, … (see api/problems.md).
 */
export class LatchProblemError extends LatchError {
  constructor(problem, status) {
    const code = typeof problem?.code === 'string' && problem.code ? problem.code : codeForStatus(status)
    const title = typeof problem?.title === 'string' ? problem.title : `HTTP ${status}`
    const detail = typeof problem?.detail === 'string' ? problem.detail : ''
    super(`latch: ${code}: ${detail || title}`)
    this.code = code
    /** HTTP status of latch's answer. */
    this.status = status
    this.title = title
    this.detail = detail
    this.type = typeof problem?.type === 'string' ? problem.type : undefined
  }
}

/**
 * latch could not be reached, timed out, or reported that its store is
 * unavailable (503 store_unavailable). Nothing was authenticated: the
 * middleware answers 503 (fail closed). `code` is `unavailable` (network),
 * `timeout` or `store_unavailable`.
 */
export class LatchUnavailableError extends LatchError {
  constructor(code, message, options) {
    super(message, options)
    this.code = code
    this.status = 503
  }
}

/** A setting refused at construction, with the reason (`code` = `config`). */
export class LatchConfigError extends LatchError {
  constructor(field, reason) {
    super(`latch: option ${field}: ${reason}`)
    this.code = 'config'
    this.field = field
    this.reason = reason
  }
}

/**
 * A request refused by the CSRF checks (`code` = `csrf`, status 403).
 * `reason` is `cross-origin`, `missing-token` or `invalid-token`.
 */
export class LatchCSRFError extends LatchError {
  constructor(reason) {
    super(`latch: CSRF check failed: ${reason}`)
    this.code = 'csrf'
    this.status = 403
    this.reason = reason
  }
}

/** The request needs a session and has none (`code` = `unauthenticated`, 401). */
export class LatchUnauthenticatedError extends LatchError {
  constructor(cause) {
    super(cause ? `latch: not authenticated: ${cause.code}` : 'latch: not authenticated')
    this.code = 'unauthenticated'
    this.status = 401
    /** The code of the credential's failure (expired, revoked, …), if one was presented. */
    this.reason = cause?.code
  }
}

function codeForStatus(status) {
  switch (status) {
    case 400: return 'bad_request'
    case 401: return 'unauthorized'
    case 403: return 'csrf'
    case 404: return 'not_found'
    case 409: case 412: return 'conflict'
    case 413: return 'too_large'
    case 429: return 'rate_limited'
    default: return status >= 500 ? 'internal' : 'bad_request'
  }
}
