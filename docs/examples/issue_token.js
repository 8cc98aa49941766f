#!/usr/bin/env node
// Get a JWT from hsmsignd over its Unix socket. Node.js 18 or later, no npm packages.
//
// This replaces the usual in-process createToken():
//
//     const createToken = (sub) => jwt.sign({sub, aud: 'api-gateway'}, process.env.JWT_SECRET, {expiresIn: '5m'});
//
// A service using this file holds no key and no secret: the signing key never leaves the HSM, and the
// service only asks. hsmsignd knows who is asking from the kernel (SO_PEERCRED, the uid of this
// process) and itself writes iss, aud, iat, nbf, exp and jti, within what its [[client]] table allows.
//
//     const {issueToken} = require('./issue_token.js');
//     const {jwt, exp} = await issueToken({socketPath: '/run/hsmsignd/sign.sock', sub: 'alice', ttl: 300});
//
//     node issue_token.js --socket /run/hsmsignd/sign.sock --sub alice [--aud A]... [--ttl N] [--claim k=v]...
'use strict';

const http = require('node:http');

const DEFAULT_SOCKET = '/run/hsmsignd/sign.sock';
const RETRYABLE_STATUS = new Set([429, 503]);  // overloaded; the token or the audit log is failing
const LONGEST_WAIT_MS = 10_000;  // a Retry-After longer than this is the caller's decision, not ours

// One kept-alive connection serves many tokens. An idle one is dropped after 30 s, before the daemon's
// idle_timeout (60 s unless configured lower) closes it under a new request.
const agent = new http.Agent({keepAlive: true, timeout: 30_000});

// status: the HTTP status (undefined when no answer came); code: the daemon's `error` ("bad_request",
// "forbidden", "overloaded", …) or the socket's errno code ("ENOENT", "ECONNREFUSED", "ETIMEDOUT", …);
// retryable: asking again later may work; retryAfter: seconds, when the daemon said so.
class IssueError extends Error {
  constructor(message, {status, code, retryable = false, retryAfter, cause} = {}) {
    super(message, cause ? {cause} : undefined);
    this.name = 'IssueError';
    Object.assign(this, {status, code, retryable, retryAfter});
  }
}

function retryAfterSeconds(header) {
  if (header === undefined) return undefined;
  if (/^\d+$/.test(header)) return Number(header);
  const date = Date.parse(header);  // Retry-After may also be an HTTP date
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}

function answerOf(res, text) {
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;  // not JSON: something other than hsmsignd answered
  }
  if (res.statusCode === 200 && typeof body?.jwt === 'string') return body;
  const code = typeof body?.error === 'string' ? body.error : undefined;
  const detail = typeof body?.message === 'string' ? body.message : text.slice(0, 200);
  throw new IssueError(`hsmsignd: ${[res.statusCode, code].filter(Boolean).join(' ')}: ${detail}`, {
    status: res.statusCode,
    code,
    retryable: RETRYABLE_STATUS.has(res.statusCode),
    retryAfter: retryAfterSeconds(res.headers['retry-after']),
  });
}

// One POST /v1/jwt: resolves to {jwt, kid, alg, jti, iat, exp} or rejects with an IssueError.
function requestToken({socketPath = DEFAULT_SOCKET, sub, aud, ttl, claims, keyset, timeout = 5000}) {
  const body = JSON.stringify({sub, aud, ttl, keyset, claims});  // JSON.stringify leaves out undefined members
  return new Promise((resolve, reject) => {
    const req = http.request({
      socketPath,
      agent,
      method: 'POST',
      path: '/v1/jwt',
      headers: {'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body)},
    });
    // An overall deadline: a socket timeout alone would wait forever for a daemon that trickles bytes.
    const timer = setTimeout(() => req.destroy(new IssueError(
        `hsmsignd: no answer on ${socketPath} within ${timeout} ms`, {code: 'ETIMEDOUT', retryable: true})), timeout);
    req.on('response', (res) => {
      const chunks = [];
      res.on('error', fail);  // the deadline or a reset in the middle of the answer
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => {
        clearTimeout(timer);
        try {
          resolve(answerOf(res, Buffer.concat(chunks).toString('utf8')));
        } catch (err) {
          reject(err);
        }
      });
    });
    // Refused, missing or reset sockets are the daemon restarting (or a kept-alive connection it had just
    // closed); a permission error is this process not being in the socket's group, which waiting won't fix.
    function fail(err) {
      clearTimeout(timer);
      reject(err instanceof IssueError ? err : new IssueError(`hsmsignd: ${socketPath}: ${err.message}`,
                                                              {code: err.code, retryable: err.code !== 'EACCES', cause: err}));
    }
    req.on('error', fail);
    req.end(body);
  });
}

// requestToken, asked again up to `retries` times for a retryable error: after the daemon's Retry-After,
// or an exponential backoff with jitter so that many callers don't come back at the same instant.
async function issueToken({retries = 2, ...request}) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await requestToken(request);
    } catch (err) {
      const wait = err.retryAfter !== undefined ? err.retryAfter * 1000 : 100 * 2 ** attempt * (0.5 + Math.random());
      if (!err.retryable || attempt >= retries || wait > LONGEST_WAIT_MS) throw err;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

function parseArgs(argv) {
  const usage = 'usage: issue_token.js [--socket PATH] --sub S [--aud A]... [--ttl SECONDS] [--keyset K] ' +
                '[--claim NAME=VALUE]... [--timeout SECONDS] [--retries N]';
  const options = {socketPath: process.env.HSMSIGND_SOCKET || DEFAULT_SOCKET};
  const audiences = [];
  const claims = {};
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(flag === '--help' ? usage : `${flag} needs a value\n${usage}`);
    if (flag === '--socket') options.socketPath = value;
    else if (flag === '--sub') options.sub = value;
    else if (flag === '--aud') audiences.push(value);
    else if (flag === '--ttl') options.ttl = Number(value);
    else if (flag === '--keyset') options.keyset = value;
    else if (flag === '--timeout') options.timeout = Number(value) * 1000;
    else if (flag === '--retries') options.retries = Number(value);
    else if (flag === '--claim') {
      const eq = value.indexOf('=');
      if (eq <= 0) throw new Error(`--claim takes NAME=VALUE\n${usage}`);
      const text = value.slice(eq + 1);
      let parsed;
      try {
        parsed = JSON.parse(text);  // as hsmsignctl does: a JSON value if it is one (5, true, [..]), else a string
      } catch {
        parsed = text;
      }
      claims[value.slice(0, eq)] = parsed;
    } else throw new Error(`unknown option ${flag}\n${usage}`);
  }
  if (options.sub === undefined) throw new Error(`--sub is required\n${usage}`);
  if (audiences.length) options.aud = audiences.length === 1 ? audiences[0] : audiences;
  if (Object.keys(claims).length) options.claims = claims;
  return options;
}

async function main() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(err.message);
    process.exitCode = 2;
    return;
  }
  try {
    console.log(JSON.stringify(await issueToken(options)));
  } catch (err) {
    console.error(err.message);
    process.exitCode = err.retryable ? 75 : 1;  // 75: EX_TEMPFAIL, so a calling script may try again later
  }
}

module.exports = {issueToken, requestToken, IssueError};

if (require.main === module) main();
