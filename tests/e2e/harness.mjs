// Harness for the e2e tests: starts the real tools/mock-upstream and the real
// skuld binary on free loopback ports with a temporary config, waits until
// both are ready, and stops them (SIGTERM, then SIGKILL after a grace period)
// when the test is done. Paths come from SKULD_BIN and MOCK_UPSTREAM_BIN (set
// by ctest; default: the build/ tree).
//
//   import { startStack } from './harness.mjs';
//   const stack = await startStack();
//   ... new OpenAI({ baseURL: stack.baseURL, apiKey: 'x' }) ...
//   await stack.stop();
//
// Children are killed when this process exits for any reason, and the temp
// directory is removed, so a failing or interrupted test leaves nothing behind.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');

export const SKULD_BIN = process.env.SKULD_BIN || path.join(repo, 'build', 'skuld');
export const MOCK_UPSTREAM_BIN =
  process.env.MOCK_UPSTREAM_BIN || path.join(repo, 'build', 'tools', 'mock-upstream', 'mock-upstream');

// The api key skuld sends upstream (through `api_key: env:...`); the tests
// check that this, and not the client's key, reaches the mock.
export const UPSTREAM_KEY = 'sk-e2e-upstream-key';
export const KEY_ENV = 'SKULD_E2E_UPSTREAM_KEY';

// Public model names of the default config and the upstream ids they map to.
export const DEFAULT_MODELS = [
  { name: 'chat', model: 'mock-model' },
  { name: 'embed', model: 'mock-embed' },
];

const live = new Set(); // child processes not yet reaped
process.on('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Keeps the last `max` bytes a child wrote, for failure messages. Reading the
// pipes also keeps a chatty child from blocking on a full pipe.
function tail(stream, max = 64 * 1024) {
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (d) => {
    text += d;
    if (text.length > max) text = text.slice(-max);
  });
  return () => text;
}

function spawnChild(name, bin, args, env) {
  if (!fs.existsSync(bin)) throw new Error(`${name} binary not found: ${bin} (set ${name === 'skuld' ? 'SKULD_BIN' : 'MOCK_UPSTREAM_BIN'})`);
  const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  child.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
    child.on('error', (err) => {
      live.delete(child);
      resolve({ code: null, signal: null, error: err });
    });
  });
  child.stdoutTail = tail(child.stdout);
  child.stderrTail = tail(child.stderr);
  child.describe = () =>
    `--- ${name} stdout ---\n${child.stdoutTail()}\n--- ${name} stderr ---\n${child.stderrTail()}`;
  return child;
}

// SIGTERM, wait up to graceMs, then SIGKILL. Resolves with the exit status.
async function stopChild(child, graceMs = 10000) {
  if (!child || !live.has(child)) return child ? child.exited : undefined;
  child.kill('SIGTERM');
  let timer;
  const timeout = new Promise((r) => (timer = setTimeout(r, graceMs, 'timeout')));
  const first = await Promise.race([child.exited, timeout]);
  clearTimeout(timer);
  if (first === 'timeout') {
    child.kill('SIGKILL');
    const st = await child.exited;
    return { ...st, killed: true };
  }
  return child.exited;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function startMock() {
  // its Azure shape takes the same upstream key, as api-key or bearer token
  const args = ['--listen', '127.0.0.1:0', '--azure-key', UPSTREAM_KEY, '--azure-token', UPSTREAM_KEY];
  const child = spawnChild('mock-upstream', MOCK_UPSTREAM_BIN, args, process.env);
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d) => {
      buf += d;
      const m = /^LISTENING (\d+)\n/m.exec(buf);
      if (m) {
        child.stdout.off('data', onData);
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    const timer = setTimeout(() => reject(new Error(`mock-upstream did not print LISTENING in 10 s\n${child.describe()}`)), 10000);
    child.stdout.on('data', onData);
    child.exited.then((st) => {
      clearTimeout(timer);
      reject(new Error(`mock-upstream exited early (${JSON.stringify(st)})\n${child.describe()}`));
    });
  });
  return { child, port };
}

function configYaml(mockPort, models, serverExtra, providers = []) {
  const server = { default_model: models[0].name, drain_timeout: '2s', ...serverExtra };
  const lines = ['server:'];
  for (const [k, v] of Object.entries(server)) lines.push(`  ${k}: ${JSON.stringify(v)}`);
  lines.push(
    'providers:',
    '  - name: mock',
    '    type: openai',
    `    base_url: http://127.0.0.1:${mockPort}/v1`,
    `    api_key: env:${KEY_ENV}`,
  );
  // Further providers of other types, all served by the same mock on their own
  // paths; a provider without a path is in-process (echo, llamacpp).
  for (const p of providers) {
    lines.push(`  - name: ${p.name}`, `    type: ${p.type}`);
    if (p.path === undefined) continue;
    lines.push(`    base_url: http://127.0.0.1:${mockPort}${p.path}`);
    if (p.key !== false) lines.push(`    api_key: env:${p.keyEnv ?? KEY_ENV}`);
    // more keys of the provider as they are (auth, api_version, ...)
    for (const [k, v] of Object.entries(p.extra ?? {})) lines.push(`    ${k}: ${JSON.stringify(v)}`);
  }
  lines.push('models:');
  for (const m of models) {
    lines.push(`  - name: ${JSON.stringify(m.name)}`, `    provider: ${m.provider ?? 'mock'}`);
    if (m.model) lines.push(`    model: ${JSON.stringify(m.model)}`);
    if (m.path) lines.push(`    path: ${JSON.stringify(m.path)}`);
    if (m.price) lines.push(`    price: ${JSON.stringify(m.price)}`);
    if (m.capabilities) lines.push(`    capabilities: ${JSON.stringify(m.capabilities)}`);
  }
  return lines.join('\n') + '\n';
}

// Polls GET /healthz until 200, the child exits, or the deadline passes.
async function waitHealthy(child, port, deadlineMs) {
  const end = Date.now() + deadlineMs;
  let exited = null;
  child.exited.then((st) => (exited = st));
  while (Date.now() < end) {
    if (exited) return { ok: false, exited };
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return { ok: true };
    } catch {
      /* not listening yet */
    }
    await sleep(50);
  }
  return { ok: false, exited };
}

async function startSkuld(configPath) {
  // The port is picked here and handed to skuld; another process may grab it
  // in between, so a start that dies early is retried on a new port.
  let last = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const env = { ...process.env, [KEY_ENV]: UPSTREAM_KEY };
    const child = spawnChild('skuld', SKULD_BIN, ['serve', '-c', configPath, '--listen', `127.0.0.1:${port}`], env);
    const r = await waitHealthy(child, port, 15000);
    if (r.ok) return { child, port };
    last = `skuld not healthy on port ${port} (${r.exited ? `exited ${JSON.stringify(r.exited)}` : 'timeout'})\n${child.describe()}`;
    await stopChild(child, 2000);
    if (!r.exited) break; // alive but not answering: retrying will not help
  }
  throw new Error(last);
}

/**
 * Starts mock-upstream and skuld. Options:
 *   models: [{name, model}] public name -> upstream id (default DEFAULT_MODELS;
 *           the first is server.default_model)
 *   server: extra keys for the server section ({access_log: false, ...})
 *   providers: more providers on the same mock: [{name, type, path}] (base_url =
 *           mock URL + path; no path: an in-process provider, echo or llamacpp;
 *           keyEnv: the api_key's variable instead of KEY_ENV, key: false for
 *           none; extra: more keys as they are, e.g. {auth: 'entra'});
 *           models may then name one ({provider, price, capabilities, path of a GGUF})
 *   config: (mockPort, dir) => YAML text: the whole skuld config instead of the
 *           generated one (models, server and providers are then ignored)
 * Returns { baseURL, port, mockURL, mockPort, mock(path, init), logs(), stop() }.
 */
export async function startStack({ models = DEFAULT_MODELS, server = {}, providers = [], config } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skuld-e2e-'));
  let mock, skuld;
  const cleanup = async () => {
    const st = { skuld: await stopChild(skuld?.child), mock: await stopChild(mock?.child) };
    fs.rmSync(dir, { recursive: true, force: true });
    return st;
  };
  try {
    mock = await startMock();
    const configPath = path.join(dir, 'skuld.yaml');
    const text = config ? await config(mock.port, dir) : configYaml(mock.port, models, server, providers);
    fs.writeFileSync(configPath, text);
    skuld = await startSkuld(configPath);
  } catch (err) {
    await cleanup();
    throw err;
  }
  const mockURL = `http://127.0.0.1:${mock.port}`;
  let stopped = null;
  return {
    port: skuld.port,
    url: `http://127.0.0.1:${skuld.port}`,
    baseURL: `http://127.0.0.1:${skuld.port}/v1`,
    mockPort: mock.port,
    mockURL,
    models,
    // JSON from the mock's introspection endpoints (/_mock/last, /_mock/stats, ...).
    async mock(p, init) {
      const res = await fetch(mockURL + p, init);
      if (!res.ok) throw new Error(`mock ${p}: HTTP ${res.status}`);
      return res.json();
    },
    logs: () => `${skuld.child.describe()}\n${mock.child.describe()}`,
    // Stops both (SIGTERM first); resolves with their exit statuses. Idempotent.
    stop() {
      stopped ??= cleanup();
      return stopped;
    },
  };
}
