// Verifies latch access tokens with Node's jsonwebtoken and jwks-rsa, the
// pair the project's seed documents use, for bench/jsonwebtoken_interop_test.go.
//
// stdin:  {"jwksUri": "http://…/.well-known/jwks.json", "tokens": ["..."], "issuer": "...", "audience": "..."}
// stdout: {"results": [{"ok": true, "sub": "...", "sid": "...", "alg": "..."} | {"ok": false, "error": "..."}, ...]}
//
// Keys come only from the JWKS URI, by kid, through jwks-rsa; jsonwebtoken
// is pinned to RS256 and ES256 (it has no EdDSA), and checks issuer,
// audience and exp. typ is checked here: jsonwebtoken does not. Neither
// tokens nor keys are printed, only error names and messages of the
// libraries, which do not contain them.
import jwt from 'jsonwebtoken';
import jwksRsa from 'jwks-rsa';

let input = '';
process.stdin.setEncoding('utf8');
for await (const chunk of process.stdin) input += chunk;

let req;
try {
  req = JSON.parse(input);
} catch {
  console.error('verify-jsonwebtoken: stdin is not JSON');
  process.exit(2);
}
if (!req || typeof req.jwksUri !== 'string' || !Array.isArray(req.tokens)) {
  console.error('verify-jsonwebtoken: want {"jwksUri": "...", "tokens": [...], "issuer": "...", "audience": "..."}');
  process.exit(2);
}

const client = jwksRsa({ jwksUri: req.jwksUri, cache: true, rateLimit: false });

function getKey(header, callback) {
  client.getSigningKey(header.kid).then(
    (key) => callback(null, key.getPublicKey()),
    (err) => callback(err),
  );
}

function verify(token) {
  return new Promise((resolve) => {
    jwt.verify(token, getKey, {
      algorithms: ['RS256', 'ES256'],
      issuer: req.issuer,
      audience: req.audience,
      complete: true,
    }, (err, decoded) => {
      if (err) {
        resolve({ ok: false, error: `${err.name}: ${err.message}` });
      } else if (String(decoded.header.typ).toLowerCase() !== 'at+jwt') {
        resolve({ ok: false, error: 'typ is not at+jwt' });
      } else {
        resolve({ ok: true, sub: decoded.payload.sub, sid: decoded.payload.sid, alg: decoded.header.alg });
      }
    });
  });
}

const results = [];
for (const token of req.tokens) results.push(await verify(token));
process.stdout.write(JSON.stringify({ results }) + '\n');
