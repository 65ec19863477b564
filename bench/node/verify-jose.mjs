// Verifies latch access tokens with panva/jose, for bench/jose_interop_test.go.
//
// stdin:  {"jwks": {...}, "tokens": ["..."], "issuer": "...", "audience": "..."}
// stdout: {"results": [{"ok": true, "sub": "...", "sid": "..."} | {"ok": false, "code": "..."}, ...]}
//
// Keys come only from the JWKS document; the header must carry typ at+jwt and
// alg EdDSA or ES256. Neither tokens nor error messages are printed, only
// jose's error codes.
import { createLocalJWKSet, jwtVerify } from 'jose';

let input = '';
process.stdin.setEncoding('utf8');
for await (const chunk of process.stdin) input += chunk;

let req;
try {
  req = JSON.parse(input);
} catch {
  console.error('verify-jose: stdin is not JSON');
  process.exit(2);
}
if (!req || typeof req.jwks !== 'object' || !Array.isArray(req.tokens)) {
  console.error('verify-jose: want {"jwks": {...}, "tokens": [...], "issuer": "...", "audience": "..."}');
  process.exit(2);
}

const JWKS = createLocalJWKSet(req.jwks);
const results = [];
for (const token of req.tokens) {
  try {
    const { payload } = await jwtVerify(token, JWKS, {
      issuer: req.issuer,
      audience: req.audience,
      typ: 'at+jwt',
      algorithms: ['EdDSA', 'ES256'],
    });
    results.push({ ok: true, sub: payload.sub, sid: payload.sid });
  } catch (err) {
    results.push({ ok: false, code: (err && err.code) || 'ERR_UNEXPECTED' });
  }
}
process.stdout.write(JSON.stringify({ results }) + '\n');
