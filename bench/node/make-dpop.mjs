// Makes DPoP proofs with panva's dpop package (an implementation of RFC 9449
// independent of latch), for bench/dpop_interop_test.go.
//
// stdin:  {"alg": "ES256" | "Ed25519" | "RS256", "requests": [{"htm": "...", "htu": "...", "access_token": "..."?}]}
// stdout: {"jkt": "<RFC 7638 thumbprint>", "proofs": ["..."]}
//
// One non-extractable key pair signs every proof. The proofs are for a
// test's own server and carry no secret.
import * as DPoP from 'dpop';

let input = '';
process.stdin.setEncoding('utf8');
for await (const chunk of process.stdin) input += chunk;
const req = JSON.parse(input);
const keypair = await DPoP.generateKeyPair(req.alg);
const proofs = [];
for (const r of req.requests) {
  proofs.push(await DPoP.generateProof(keypair, r.htu, r.htm, undefined, r.access_token));
}
console.log(JSON.stringify({ jkt: await DPoP.calculateThumbprint(keypair.publicKey), proofs }));
