// The in-process alternative to hsmsignd that issue 15 compares against: node's `jose` (the version
// package.json pins) signing ES256 JWTs with a software P-256 key in this process, no token, no audit.
//
//   node bench/jose_sign.mjs [--seconds 3] [--concurrency 8]
//
// Makes a key, warms up for 0.3 s, then keeps --concurrency signatures in flight (that many async loops,
// each awaiting SignJWT.sign() and starting the next) for --seconds. The claims are those of the
// daemon's tokens (iss, sub, aud, iat, nbf, exp, a 16-byte jti; header alg, kid, typ). jose signs with
// node's crypto.sign on libuv's thread pool, so the signatures themselves run beside the event loop.
// Prints one line: "jose RATE TOKENS ELAPSED_S CPU_S" (tokens/s, tokens, wall seconds, this process's
// user+system CPU seconds over the timed part, every thread of it).
import { SignJWT, generateKeyPair, exportJWK, calculateJwkThumbprint } from 'jose';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';

const args = { seconds: 3, concurrency: 8 };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, '');
  if (!(key in args)) throw new Error(`unknown option ${process.argv[i]}`);
  args[key] = Number(process.argv[i + 1]);
}

const { privateKey, publicKey } = await generateKeyPair('ES256');
const kid = await calculateJwkThumbprint(await exportJWK(publicKey));

const sign = () => {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
    .setIssuer('https://bench.example')
    .setSubject('bench-user')
    .setAudience('bench')
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + 300)
    .setJti(randomBytes(16).toString('base64url'))
    .sign(privateKey);
};

// Runs `concurrency` loops until `until` (performance.now() ms); returns the tokens signed.
const run = async (until) => {
  let tokens = 0;
  const loop = async () => {
    while (performance.now() < until) {
      await sign();
      ++tokens;
    }
  };
  await Promise.all(Array.from({ length: args.concurrency }, loop));
  return tokens;
};

await run(performance.now() + 300);
const cpuBefore = process.cpuUsage();
const start = performance.now();
const tokens = await run(start + 1000 * args.seconds);
const elapsed = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpuBefore);
process.stdout.write(
  `jose ${Math.round(tokens / elapsed)} ${tokens} ${elapsed.toFixed(3)} ${((cpu.user + cpu.system) / 1e6).toFixed(3)}\n`,
);
