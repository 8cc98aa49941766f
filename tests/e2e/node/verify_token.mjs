// A verifier hsmsignd did not write: jose checks the JWT against the published JWKS; the documented Redis
// keys (node-redis) and the Token Status List (@sd-jwt/jwt-status-list, its token checked by jose too)
// say whether it is revoked. Prints one JSON line: {"valid": bool, "reason"?: string, ...}.
//
//   node verify_token.mjs --jwks URL --token JWT [--aud AUD] [--redis /path/redis.sock] [--status-list]
import { createLocalJWKSet, jwtVerify, decodeJwt } from 'jose';
import { getListFromStatusListJWT, getStatusListFromJWT } from '@sd-jwt/jwt-status-list';
import { createClient } from 'redis';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, word, i, all) => {
    if (word.startsWith('--')) pairs.push([word.slice(2), all[i + 1] && !all[i + 1].startsWith('--') ? all[i + 1] : true]);
    return pairs;
  }, []),
);

const out = (answer) => {
  process.stdout.write(JSON.stringify(answer) + '\n');
  process.exit(0);
};

const jwks = createLocalJWKSet(await (await fetch(args.jwks)).json());
let claims;
try {
  // Asymmetric algorithms only: a token claiming none or HS256 is refused by the allow-list itself.
  ({ payload: claims } = await jwtVerify(args.token, jwks, {
    algorithms: ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'],
    audience: args.aud === true ? undefined : args.aud,
    requiredClaims: ['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti'],
  }));
} catch (e) {
  out({ valid: false, reason: e.code || e.message });
}

if (args.redis) {
  const redis = createClient({ socket: { path: args.redis } });
  await redis.connect();
  // The seed's checkTokenBlacklist, made real: one EXISTS, then the subject's not-before.
  const revoked = await redis.exists(`hsmsignd:revoked:${claims.iss}:${claims.jti}`);
  const notBefore = await redis.get(`hsmsignd:notbefore:${claims.iss}:${claims.sub}`);
  await redis.quit();
  if (revoked) out({ valid: false, reason: 'revoked', by: 'redis' });
  if (notBefore !== null && claims.iat < Number(notBefore)) out({ valid: false, reason: 'revoked', by: 'redis-notbefore' });
}

if (args['status-list']) {
  const { idx, uri } = getStatusListFromJWT(args.token);
  const response = await fetch(uri);
  const listToken = await response.text();
  // The list is trusted only because the JWKS's key signed it, with its own typ.
  const { payload, protectedHeader } = await jwtVerify(listToken, jwks, { typ: 'statuslist+jwt' });
  if (payload.sub !== uri) out({ valid: false, reason: 'status list sub is not its uri' });
  const status = getListFromStatusListJWT(listToken).getStatus(idx);
  if (status !== 0) out({ valid: false, reason: 'revoked', by: 'status-list', status, kid: protectedHeader.kid });
}

out({ valid: true, jti: decodeJwt(args.token).jti });
