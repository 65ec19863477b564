// Set-Cookie strings byte for byte as Go's net/http Cookie.String writes
// them (the order latchhttp sends): Name=Value; Path; Domain; Expires;
// Max-Age; HttpOnly; Secure; SameSite.

const EPOCH = 'Thu, 01 Jan 1970 00:00:00 GMT'

export function serialize({name, value, path, domain, maxAge, expire, secure, sameSite}) {
  let s = `${name}=${value}`
  if (path) s += `; Path=${path}`
  if (domain) s += `; Domain=${domain}`
  if (expire) s += `; Expires=${EPOCH}; Max-Age=0`
  else if (maxAge > 0) s += `; Max-Age=${maxAge}`
  s += '; HttpOnly'
  if (secure) s += '; Secure'
  if (sameSite) s += `; SameSite=${sameSite}`
  return s
}

/** Returns the first value of cookie `name` in a Cookie header, or undefined. */
export function read(header, name) {
  if (!header) return undefined
  let i = 0
  while (i < header.length) {
    let j = header.indexOf(';', i)
    if (j < 0) j = header.length
    const part = header.slice(i, j).trim()
    i = j + 1
    const eq = part.indexOf('=')
    if (eq < 0 || part.slice(0, eq) !== name) continue
    let v = part.slice(eq + 1)
    if (v.length >= 2 && v[0] === '"' && v[v.length - 1] === '"') v = v.slice(1, -1)
    return v
  }
  return undefined
}

/** RFC 7230 token: also what RFC 6265 allows as a cookie name. */
export function validName(s) {
  return typeof s === 'string' && /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(s)
}
