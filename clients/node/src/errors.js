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

// The fixed descriptions of DPoP refusals, as latch serve and latchhttp send
// them (package dpop); each names one check.
const DPOP_DESCRIPTIONS = {
  malformed: 'the DPoP proof is not a well-formed JWS',
  too_large: 'the DPoP proof is too large',
  typ: 'the DPoP proof typ is not dpop+jwt',
  alg_none: 'alg none is never accepted',
  alg_symmetric: 'a DPoP proof must use an asymmetric algorithm',
  alg: 'the DPoP proof alg is not supported or does not match its key',
  header: 'the DPoP proof header has a parameter that is not accepted',
  jwk: 'the DPoP proof jwk is missing or not a supported public key',
  private_key: 'the DPoP proof jwk contains private key material',
  signature: 'the DPoP proof signature does not verify',
  missing_claim: 'the DPoP proof lacks jti, htm, htu or iat',
  htm: 'htm does not match the request method',
  htu: 'htu does not match the request URL',
  iat_stale: 'the DPoP proof iat is too old',
  iat_future: 'the DPoP proof iat is in the future',
  jti_replayed: 'the DPoP proof was already used',
  ath_missing: 'the DPoP proof lacks ath for the access token',
  ath: 'ath does not match the access token',
  ath_unexpected: 'the DPoP proof has ath but no access token accompanies it',
  key_mismatch: 'the DPoP proof is not signed by the key the token is bound to',
  bound_as_bearer: 'the token is DPoP-bound and must be sent with the DPoP scheme and a proof',
  nonce: "the DPoP proof must carry the server's current nonce",
  proof_missing: 'a DPoP proof is required: the session is bound to a DPoP key',
}
const DPOP_REASONS = new Map(Object.entries(DPOP_DESCRIPTIONS).map(([k, v]) => [v, k]))

/**
 * A DPoP proof (RFC 9449) was refused, by latch or by the middleware's
 * local check: `code` is `invalid_dpop_proof`, or `use_dpop_nonce`
 * (a LatchDPoPNonceError). `reason` names the failed check (`htu`,
 * `jti_replayed`, `key_mismatch`, `bound_as_bearer`, …; `unknown` if latch
 * sent a description this version does not know). Nothing was changed.
 */
export class LatchDPoPError extends LatchProblemError {
  constructor(reason, {nonce, problem, status = 401} = {}) {
    const description = DPOP_DESCRIPTIONS[reason] ?? problem?.detail ?? ''
    super(problem ?? {code: reason === 'nonce' ? 'use_dpop_nonce' : 'invalid_dpop_proof', title: 'Unauthorized', detail: description}, status)
    this.reason = reason
    /** The fixed explanation, for error_description. */
    this.description = description
    if (nonce) this.nonce = nonce
  }

  /** @internal From latch's problem document and headers. */
  static fromProblem(problem, status, headers) {
    const named = typeof problem?.reason === 'string' && problem.reason in DPOP_DESCRIPTIONS ? problem.reason : undefined
    const reason = named ?? DPOP_REASONS.get(problem?.detail) ?? (problem?.code === 'use_dpop_nonce' ? 'nonce' : 'unknown')
    const nonce = typeof headers['dpop-nonce'] === 'string' ? headers['dpop-nonce'] : undefined
    const C = problem?.code === 'use_dpop_nonce' ? LatchDPoPNonceError : LatchDPoPError
    const e = new C(reason, {nonce, problem, status})
    if (/^DPoP /.test(headers['www-authenticate'] ?? '')) e.challenge = headers['www-authenticate']
    return e
  }
}

/**
 * The proof lacked the server's current nonce (`use_dpop_nonce`, RFC 9449
 * §8): make a new proof with `nonce` (from the DPoP-Nonce header) and retry.
 */
export class LatchDPoPNonceError extends LatchDPoPError {}

/**
 * The session is valid, but its user authenticated longer ago than
 * `maxAge` seconds or with an ACR not in `acrValues` (RFC 9470
 * `insufficient_user_authentication`, status 401). Re-authenticate the
 * user, then renew the session with the new authTime, acr and amr.
 * `challenge` is the WWW-Authenticate value to answer with.
 */
export class LatchInsufficientAuthError extends LatchProblemError {
  constructor({maxAge, acrValues, problem, status = 401} = {}) {
    const acr = acrValues?.length ? [...acrValues] : undefined
    const detail = maxAge && acr ? 'A more recent authentication of another level is required'
      : maxAge ? 'A more recent authentication is required' : 'A different authentication level is required'
    super(problem ?? {code: 'insufficient_user_authentication', title: 'Unauthorized', detail}, status)
    /** Seconds: the most time since authentication the action accepts, if it limits it. */
    if (maxAge) this.maxAge = maxAge
    /** The ACR values the action accepts, if it limits them. */
    if (acr) this.acrValues = acr
    this.challenge = `Bearer error="insufficient_user_authentication", error_description="${detail}"` +
      (maxAge ? `, max_age="${maxAge}"` : '') + (acr ? `, acr_values="${acr.join(' ')}"` : '')
  }

  /** @internal From latch's answer: the requirement is read from its challenge. */
  static fromProblem(problem, status, headers) {
    const c = String(headers['www-authenticate'] ?? '')
    const maxAge = /\bmax_age="?(\d+)"?/.exec(c)?.[1]
    const acr = /\bacr_values="([^"]*)"/.exec(c)?.[1]
    const e = new LatchInsufficientAuthError({maxAge: maxAge ? Number(maxAge) : undefined, acrValues: acr ? acr.split(' ').filter(Boolean) : undefined, problem, status})
    if (/^Bearer /.test(c)) e.challenge = c
    return e
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
