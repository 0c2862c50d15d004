// token-server.mjs: the app backend's one job in this example, for development only:
// it signs the jam server's sign-in tokens (HS256 JWTs, docs/signing-in.md). A real app
// does this behind its own login; this one believes any name it is told.
//
//   POST /token  {"name": "Ana"}  ->  {"token": "<JWT>", "exp": <seconds since the epoch>}
//
// The secret is the file $JAM_JWT_SECRET_FILE, else dev/jwt-secret beside this script,
// made (32 random bytes, mode 0600) when missing; jam-server must be started with the same
// file: `cargo run --release -- --jwt-secret-file <that file>`. It listens on 127.0.0.1,
// port $TOKEN_PORT (3002); tokens live $TOKEN_LIFETIME seconds (600). `npm run dev`
// starts it beside Vite, whose dev server passes `/token` on to it (vite.config.ts).

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SignJWT } from 'jose';

const here = path.dirname(fileURLToPath(import.meta.url));
/** Where the secret is kept when $JAM_JWT_SECRET_FILE does not say. */
export const DEFAULT_SECRET_FILE = path.join(here, 'jwt-secret');

/**
 * The secret in `file`, as jam-server reads it (trailing whitespace is not part of it);
 * a missing file is made with a fresh random secret first.
 */
export function readOrMakeSecret(file) {
  if (!fs.existsSync(file)) {
    fs.writeFileSync(file, `${crypto.randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  }
  const secret = fs.readFileSync(file).toString('utf8').replace(/\s+$/, '');
  if (!secret) throw new Error(`${file} holds no secret`);
  return secret;
}

/** The JSON body of a request, at most 4 KiB. */
function readJson(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 4096) reject(new Error('body too large'));
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(body || '{}'));
      } catch {
        reject(new Error('body is not JSON'));
      }
    });
    req.on('error', reject);
  });
}

function answer(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

/**
 * Starts the endpoint. Resolves to `{ url, close() }`, `url` being the token URL. The user
 * id (`sub`) is made from the name, so one name is one user: a second tab with the same
 * name cannot take a second seat in a room (`name_taken`).
 */
export async function startTokenServer({
  secretFile = DEFAULT_SECRET_FILE, port = 3002, host = '127.0.0.1', lifetimeS = 600, allowOrigins = [],
} = {}) {
  const key = new TextEncoder().encode(readOrMakeSecret(secretFile));
  const server = http.createServer(async (req, res) => {
    // A page on another origin (the web demo served by jam-server, `?tokenUrl=`) may ask
    // when its origin is listed ($TOKEN_ALLOW_ORIGINS).
    const origin = req.headers.origin;
    if (origin && allowOrigins.includes(origin)) {
      res.setHeader('access-control-allow-origin', origin);
      res.setHeader('vary', 'origin');
      if (req.method === 'OPTIONS') {
        res.writeHead(204, { 'access-control-allow-methods': 'POST', 'access-control-allow-headers': 'content-type' });
        return res.end();
      }
    }
    const url = new URL(req.url, 'http://x');
    if (url.pathname !== '/token') return answer(res, 404, { error: 'POST /token {"name": "..."}' });
    if (req.method !== 'POST') return answer(res, 405, { error: 'POST only' });
    let name;
    try {
      ({ name } = await readJson(req));
    } catch (err) {
      return answer(res, 400, { error: err.message });
    }
    name = typeof name === 'string' ? name.trim() : '';
    if (name.length < 1 || name.length > 32) return answer(res, 400, { error: 'a name of 1 to 32 characters' });
    const iat = Math.floor(Date.now() / 1000);
    const exp = iat + lifetimeS;
    const token = await new SignJWT({ name })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(`dev:${name.toLowerCase()}`)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(key);
    answer(res, 200, { token, exp });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return {
    url: `http://${host}:${server.address().port}/token`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  };
}

// Run as a script: the endpoint until Ctrl-C.
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const secretFile = path.resolve(process.env.JAM_JWT_SECRET_FILE || DEFAULT_SECRET_FILE);
  const endpoint = await startTokenServer({
    secretFile,
    port: Number(process.env.TOKEN_PORT || 3002),
    lifetimeS: Number(process.env.TOKEN_LIFETIME || 600),
    allowOrigins: (process.env.TOKEN_ALLOW_ORIGINS || '').split(',').filter(Boolean),
  });
  console.log(`token endpoint listening at ${endpoint.url}, signing with ${secretFile}`);
  console.log(`run jam-server with the same secret: cargo run --release -- --jwt-secret-file ${secretFile}`);
  for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => endpoint.close().then(() => process.exit(0)));
}
