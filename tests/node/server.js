// Starts the real sluice binary for a test file and stops it again.
//
//   const sluice = useSluice(['--demo-tps', '0']); // started before the tests, stopped after
//   test('…', () => fetch(sluice.url + '/v1/models'));
//
//   const other = await startSluice({ args: ['--api-keys', key] }); // inside one test
//   await other.stop(); // SIGTERM, then asserts a clean exit (code 0)
//
//   const tls = await makeCert(); // a certificate for 127.0.0.1 (openssl)
//   const secure = await startSluice({ tls }); // HTTPS: HTTP/2 and HTTP/1.1
//   await secure.get('/metrics'); // {status, body}, trusting that certificate
//
// The binary is built once per process from the repository this file lives
// in (go build ./cmd/sluice), unless SLUICE_BIN names one already built.

import { spawn, execFile } from 'node:child_process';
import { after, before } from 'node:test';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 20_000;

let built; // Promise<string>: the path of the binary
let buildDir; // removed when the process exits
const running = new Set(); // child processes not yet stopped
const dataDirs = []; // the servers' conversation databases, removed when the process exits

process.on('exit', () => {
  // A test that crashed before its after() hook must not leave servers behind.
  for (const child of running) child.kill('SIGKILL');
  if (buildDir) rmSync(buildDir, { recursive: true, force: true });
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

/** Returns the path of the sluice binary, building it on first use. */
export function sluiceBinary() {
  if (process.env.SLUICE_BIN) return Promise.resolve(path.resolve(process.env.SLUICE_BIN));
  built ??= (async () => {
    buildDir = await mkdtemp(path.join(os.tmpdir(), 'sluice-node-tests-'));
    const bin = path.join(buildDir, 'sluice');
    try {
      await promisify(execFile)('go', ['build', '-o', bin, './cmd/sluice'], {
        cwd: repoRoot,
        maxBuffer: 16 << 20,
      });
    } catch (err) {
      throw new Error(`go build ./cmd/sluice failed in ${repoRoot}:\n${err.stderr || err.message}`);
    }
    return bin;
  })();
  return built;
}

/** Finds a free loopback port: listen on port 0, note the port, close. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Makes a self-signed certificate for 127.0.0.1 and localhost with openssl
 * (scripts/test.sh installs it), in a directory removed when the process
 * exits. Returns the files' paths and the certificate itself, to trust.
 * @returns {Promise<{cert: string, key: string, ca: string}>}
 */
export async function makeCert() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-cert-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  try {
    await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost']);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`openssl could not make a certificate (scripts/test.sh installs openssl): ${err.stderr || err.message}`);
  }
  return { cert, key, ca: await readFile(cert, 'utf8') };
}

/**
 * GET or POST to url with node's own http(s) client, trusting ca for
 * HTTPS (fetch cannot be told to). Resolves to {status, body}.
 */
export function request(url, { ca, method = 'GET', body, headers = {}, timeout = 5000 } = {}) {
  const mod = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(url, { method, ca, headers, timeout }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c) => { text += c; }).on('end', () => resolve({ status: res.statusCode, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer in ${timeout} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Starts sluice on a free loopback port and waits until GET /healthz
 * answers 200. It logs at warn level unless args say otherwise.
 *
 * @param {object} [opts]
 * @param {string[]} [opts.args] extra flags, e.g. ['--demo-tps', '200']
 * @param {Record<string,string>} [opts.env] extra environment (SLUICE_*)
 * @param {{cert: string, key: string, ca: string}} [opts.tls] serve HTTPS with this certificate (makeCert)
 * @returns {Promise<{url: string, stop: () => Promise<void>, logs: () => string,
 *   get: (path: string) => Promise<{status: number, body: string}>}>}
 */
export async function startSluice({ args = [], env = {}, tls } = {}) {
  const bin = await sluiceBinary();
  // Another process may take the port between our close and sluice's
  // listen; try again with a fresh port if sluice exits at start.
  let lastErr;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    try {
      return await launch(bin, port, args, env, tls);
    } catch (err) {
      lastErr = err;
      if (!/address already in use/i.test(err.message)) throw err;
    }
  }
  throw lastErr;
}

async function launch(bin, port, args, env, tls) {
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  if (tls) args = ['--tls-cert', tls.cert, '--tls-key', tls.key, ...args];
  // Each server keeps its conversations in a directory of its own, never
  // in the user's data directory; a test may name another (SLUICE_DATA_DIR
  // in env, or --data-dir in args).
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'sluice-data-'));
  dataDirs.push(dataDir);
  const child = spawn(bin, ['serve', '--addr', `127.0.0.1:${port}`, '--log-level', 'warn', ...args], {
    env: { ...process.env, SLUICE_DATA_DIR: dataDir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let output = '';
  const keep = (chunk) => {
    output += chunk;
    if (output.length > 256 << 10) output = output.slice(-(128 << 10));
  };
  child.stdout.setEncoding('utf8').on('data', keep);
  child.stderr.setEncoding('utf8').on('data', keep);
  const logs = () => output;

  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
    child.once('error', (err) => {
      running.delete(child);
      resolve({ code: null, signal: null, error: err });
    });
  });

  const get = (p) => request(url + p, { ca: tls?.ca });
  try {
    await waitHealthy(url, exited, tls?.ca);
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    throw new Error(`${err.message}\n--- sluice output ---\n${logs()}`);
  }

  let stopped;
  const stop = () => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      let timer;
      const timeout = new Promise((resolve) => {
        timer = setTimeout(() => resolve(null), STOP_TIMEOUT_MS);
      });
      const result = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      if (result === null) {
        child.kill('SIGKILL');
        await exited;
        throw new Error(`sluice did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM\n--- sluice output ---\n${logs()}`);
      }
      if (result.code !== 0) {
        throw new Error(
          `sluice exited with code ${result.code} (signal ${result.signal}) after SIGTERM\n--- sluice output ---\n${logs()}`,
        );
      }
    })();
    return stopped;
  };
  return { url, stop, logs, get };
}

/**
 * Starts sluice with these flags before the tests of the enclosing file or
 * describe(), and stops it after them (a failed stop fails the run). Returns
 * the object that startSluice gives, filled in once the before hook ran.
 * setup(sluice), if given, runs in the same hook once sluice is up: Node 20
 * runs a file's top-level before hooks concurrently, so another hook could
 * not count on sluice being there.
 */
export function useSluice(args = [], setup = async () => {}) {
  const sluice = {};
  before(async () => {
    Object.assign(sluice, await startSluice({ args }));
    await setup(sluice);
  }, { timeout: 60_000 });
  after(() => sluice.stop?.(), { timeout: 30_000 });
  return sluice;
}

/** Polls GET /healthz until it answers 200; fails at once if sluice exits. */
async function waitHealthy(url, exited, ca) {
  let gone = null;
  exited.then((r) => {
    gone = r;
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  let delay = 10;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (gone) {
      throw new Error(`sluice exited before it was healthy (code ${gone.code}, signal ${gone.signal}${gone.error ? ', ' + gone.error.message : ''})`);
    }
    try {
      const res = await request(url + '/healthz', { ca, timeout: 1000 });
      if (res.status === 200) return;
      last = `${res.status} ${res.body.trim()}`;
    } catch (err) {
      last = err.cause?.code || err.message;
    }
    // Wake up early if the process exits while we wait.
    await Promise.race([new Promise((r) => setTimeout(r, delay)), exited]);
    delay = Math.min(delay * 2, 200);
  }
  throw new Error(`sluice at ${url} was not healthy within ${START_TIMEOUT_MS} ms (last: ${last})`);
}

export { repoRoot };
