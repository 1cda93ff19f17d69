// What the browser tests share: the environment, an amqpgwd of their own on
// free ports, Debian's headless chromium, and waiting for the page.
import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const WAIT = 30_000;
export const CHROMIUM = process.env.AMQPGW_CHROMIUM ?? "/usr/bin/chromium";

export function mustEnv(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

export function brokerUri(nodeDir) {
  const env = readFileSync(join(nodeDir, "node.env"), "utf8");
  const m = env.match(/^URI=(.*)$/m);
  if (!m) throw new Error(`no URI in ${nodeDir}/node.env`);
  return m[1].trim();
}

export function managementUrl(nodeDir) {
  const env = readFileSync(join(nodeDir, "node.env"), "utf8");
  const m = env.match(/^MGMT_URL=(.*)$/m);
  if (!m) throw new Error(`no MGMT_URL in ${nodeDir}/node.env`);
  return m[1].trim();
}

// Starts `amqpgwd` on free ports (or `httpListen`) with `extraArgs` (the
// node's management API unless they name a --management_url); `url`
// resolves with the page's URL (http:// or https://) once it logged it,
// `grpc` with its gRPC address (127.0.0.1:PORT).
export function startDaemon(amqpgwd, nodeDir, extraArgs = [], httpListen = "127.0.0.1:0") {
  const args = ["--listen=127.0.0.1:0", `--http_listen=${httpListen}`,
                `--broker=${brokerUri(nodeDir)}`, "--shutdown_grace=2s",
                "--reconnect_max_delay=1s", ...extraArgs];
  if (!extraArgs.some((a) => a.startsWith("--management_url="))) {
    args.push(`--management_url=${managementUrl(nodeDir)}`);
  }
  const child = spawn(amqpgwd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  const url = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`amqpgwd did not start:\n${log}`)), WAIT);
    const onData = (d) => {
      log += d;
      const m = log.match(/browser view and grpc-web on (https?:\/\/\S+\/)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => reject(new Error(`amqpgwd exited (${code}):\n${log}`)));
  });
  const grpc = url.then(() => {
    const m = log.match(/listening on \S+ \(gRPC; port (\d+)\)/);
    if (!m) throw new Error(`no gRPC port in the log:\n${log}`);
    return `127.0.0.1:${m[1]}`;
  });
  grpc.catch(() => {});  // reported through `url` or to whoever awaits it
  return { child, url, grpc, log: () => log };
}

// Runs the CLI (`amqpgw`) against `server`; resolves with its stdout,
// rejects with its stderr when it exits non-zero.
export function cli(amqpgw, server, args, timeout = WAIT) {
  return new Promise((resolve, reject) => {
    execFile(amqpgw, ["--server", server, ...args], { timeout }, (err, stdout, stderr) => {
      if (err) reject(new Error(`amqpgw ${args.join(" ")}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

// Polls `f` (async) until it returns a truthy value; throws `what` with the
// last value after `timeout`.
export async function waitFor(f, what, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await f();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: still ${JSON.stringify(last)} after ${timeout} ms`);
}

// SIGTERM; true when it exited 0 within WAIT (else it is killed).
export async function stopDaemon(daemon) {
  const exited = new Promise((resolve) => daemon.child.on("exit", resolve));
  daemon.child.kill("SIGTERM");
  let timer;
  const code = await Promise.race(
    [exited, new Promise((r) => { timer = setTimeout(() => r("timeout"), WAIT); })]);
  clearTimeout(timer);
  if (code !== 0) {
    console.error(`amqpgwd did not exit cleanly on SIGTERM: ${code}`);
    if (code === "timeout") daemon.child.kill("SIGKILL");
    return false;
  }
  return true;
}

// Headless chromium with a fresh profile folder.
export function launchChromium(profile, extraArgs = []) {
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run",
           ...extraArgs],
  });
}

export function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

// Waits until the locator's text matches `re`.
export async function waitText(locator, re, what, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let last = "";
  while (Date.now() < deadline) {
    last = (await locator.textContent({ timeout }).catch(() => "")) ?? "";
    if (re.test(last)) return last;
    await locator.page().waitForTimeout(50);
  }
  throw new Error(`${what}: want ${re}, have "${last}"`);
}

export async function waitCount(locator, n, what, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let have = -1;
  while (Date.now() < deadline) {
    have = await locator.count();
    if (have === n) return;
    await locator.page().waitForTimeout(50);
  }
  throw new Error(`${what}: want ${n}, have ${have}`);
}
