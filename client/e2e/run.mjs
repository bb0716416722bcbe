// Runs the browser tests against the real server: CHATD_BIN=<path to chatd> npm run e2e
//
// Installs Debian's Chromium when it is missing, starts `chatd serve` on a free local port with a
// fresh data directory, waits for /api/health, runs Playwright, and always stops the server.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const clientDir = resolve(here, '..');
const artifacts = join(here, 'artifacts');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

function log(message) {
  console.log(`e2e: ${message}`);
}

function die(message) {
  console.error(`e2e: ${message}`);
  process.exit(1);
}

function ensureChromium() {
  if (existsSync(CHROMIUM)) return;
  log(`${CHROMIUM} is missing; installing Debian's chromium with apt-get`);
  const asRoot = typeof process.getuid !== 'function' || process.getuid() === 0;
  const sudo = asRoot ? [] : ['sudo', '-n'];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [
    ['apt-get', 'update'],
    ['apt-get', 'install', '-y', '--no-install-recommends', 'chromium', 'fonts-noto-color-emoji'],
  ]) {
    const command = [...sudo, ...args];
    const result = spawnSync(command[0], command.slice(1), { stdio: 'inherit', env });
    if (result.status !== 0) die(`\`${command.join(' ')}\` failed`);
  }
  if (!existsSync(CHROMIUM)) die(`apt-get finished but ${CHROMIUM} is still missing`);
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

async function waitForHealth(url, server, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) return false;
    try {
      const response = await fetch(`${url}/api/health`);
      if (response.ok) return true;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

function stop(server) {
  return new Promise((done) => {
    if (server.exitCode !== null || server.signalCode !== null) return done();
    const timer = setTimeout(() => server.kill('SIGKILL'), 10_000);
    server.once('exit', () => {
      clearTimeout(timer);
      done();
    });
    server.kill('SIGTERM');
  });
}

// npm runs scripts from client/; a relative CHATD_BIN means relative to where npm was started.
const bin = process.env.CHATD_BIN
  ? resolve(process.env.INIT_CWD ?? process.cwd(), process.env.CHATD_BIN)
  : null;
if (!bin)
  die(
    'set CHATD_BIN to the chatd binary, e.g. CHATD_BIN=target/debug/chatd npm --prefix client run e2e',
  );
if (!existsSync(bin)) die(`CHATD_BIN=${bin} does not exist; build the server first`);

ensureChromium();
mkdirSync(artifacts, { recursive: true });

const port = await freePort();
const dataDir = mkdtempSync(join(tmpdir(), 'chatd-e2e-'));
const baseUrl = `http://127.0.0.1:${port}`;
// The server logs straight into a file: a pipe that this process stopped draining would
// eventually block the server's writes and stall it.
const serverLog = openSync(join(artifacts, 'server.log'), 'w');
log(`starting ${bin} serve on ${baseUrl} (data in ${dataDir})`);
const server = spawn(bin, ['serve'], {
  env: {
    ...process.env,
    CHATD_LISTEN: `127.0.0.1:${port}`,
    CHATD_DATA_DIR: dataDir,
    // Every browser here signs in from one loopback address, far faster than people do.
    CHATD_RATE_LIMITS__SIGNINS_PER_ADDRESS_PER_MINUTE: '0',
    CHATD_RATE_LIMITS__SIGNINS_PER_ACCOUNT_PER_MINUTE: '0',
    RUST_LOG: process.env.RUST_LOG ?? 'info',
  },
  stdio: ['ignore', serverLog, serverLog],
});
closeSync(serverLog);

let status = 1;
let playwright = null;
const cleanup = async () => {
  if (playwright && playwright.exitCode === null) playwright.kill('SIGTERM');
  await stop(server);
  rmSync(dataDir, { recursive: true, force: true });
};
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => void cleanup().then(() => process.exit(130)));
}

function runPlaywright(args, env) {
  return new Promise((done) => {
    const cli = join(clientDir, 'node_modules', '@playwright', 'test', 'cli.js');
    playwright = spawn(
      process.execPath,
      [cli, 'test', '-c', join(here, 'playwright.config.ts'), ...args],
      {
        cwd: clientDir,
        stdio: 'inherit',
        env,
      },
    );
    playwright.on('exit', (code) => done(code ?? 1));
  });
}

try {
  if (!(await waitForHealth(baseUrl, server, 30_000))) {
    throw new Error(
      `chatd did not become healthy (exit code ${server.exitCode}); see e2e/artifacts/server.log`,
    );
  }
  const page = await (await fetch(`${baseUrl}/`)).text();
  if (!page.includes('<app-root')) {
    throw new Error(
      'this chatd binary serves no web app (was it built with CHATD_SKIP_UI=1?); rebuild it with `cargo build`',
    );
  }
  log('server is up; running Playwright');
  status = await runPlaywright(process.argv.slice(2), {
    ...process.env,
    CHATD_URL: baseUrl,
    CHROMIUM_BIN: CHROMIUM,
    CHATD_E2E_ARTIFACTS: artifacts,
  });
} catch (error) {
  console.error(`e2e: ${error.message}`);
  status = 1;
} finally {
  await cleanup();
}
log(status === 0 ? 'passed' : `failed (exit ${status})`);
process.exit(status);
