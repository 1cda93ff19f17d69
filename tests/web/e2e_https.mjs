// The browser view over HTTPS: a CA and a server certificate made here with
// openssl, amqpgwd serving its HTTP port with them (--http_tls_cert,
// --http_tls_key), and Debian's headless chromium trusting exactly that
// server key (--ignore-certificate-errors-spki-list, not "ignore all
// errors"). The page loads over TLS from the test CA, shows the session,
// declares a queue, publishes and consumes through grpc-web over HTTPS, and
// reads GetStatus with a Connect GET from the page's own origin.
//
//   AMQPGWD=build/server/amqpgwd AMQPGW_TEST_NODE_DIR=build/test-rabbitmq \
//   AMQPGW_ARTIFACTS=build/test-artifacts node tests/web/e2e_https.mjs
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { check, launchChromium, mustEnv, startDaemon, stopDaemon, waitCount,
         waitText } from "./harness.mjs";

const AMQPGWD = mustEnv("AMQPGWD");
const NODE_DIR = mustEnv("AMQPGW_TEST_NODE_DIR");
const ARTIFACTS = process.env.AMQPGW_ARTIFACTS ?? join(tmpdir(), "amqpgw-artifacts");

function openssl(args, input) {
  return execFileSync("openssl", args, { input, stdio: ["pipe", "pipe", "pipe"] });
}

// ca.pem, server.pem, server.key (for 127.0.0.1 and localhost) in `dir`;
// returns the base64 SHA-256 of the server's public key (SPKI).
function makeCertificates(dir) {
  const p = (f) => join(dir, f);
  openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
           "-subj", "/CN=amqpgw e2e test CA", "-keyout", p("ca.key"),
           "-out", p("ca.pem"), "-addext", "basicConstraints=critical,CA:TRUE",
           "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
  openssl(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
           "-keyout", p("server.key"), "-out", p("server.csr")]);
  writeFileSync(p("server.ext"),
    "subjectAltName=IP:127.0.0.1,DNS:localhost\n" +
    "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n");
  openssl(["x509", "-req", "-in", p("server.csr"), "-CA", p("ca.pem"),
           "-CAkey", p("ca.key"), "-CAcreateserial", "-days", "2",
           "-extfile", p("server.ext"), "-out", p("server.pem")]);
  const pub = openssl(["x509", "-pubkey", "-noout", "-in", p("server.pem")]);
  const der = openssl(["pkey", "-pubin", "-outform", "der"], pub);
  return openssl(["dgst", "-sha256", "-binary"], der).toString("base64");
}

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  const certs = mkdtempSync(join(tmpdir(), "amqpgw-e2e-certs-"));
  const spki = makeCertificates(certs);
  const daemon = startDaemon(AMQPGWD, NODE_DIR, [
    `--http_tls_cert=${join(certs, "server.pem")}`,
    `--http_tls_key=${join(certs, "server.key")}`]);
  const profile = mkdtempSync(join(tmpdir(), "amqpgw-chromium-"));
  let context;
  let page;
  const pageErrors = [];
  const insecure = [];
  try {
    const url = await daemon.url;
    console.log(`page: ${url}`);
    check(url.startsWith("https://127.0.0.1:"), `the daemon serves HTTPS (${url})`);
    context = await launchChromium(profile, [`--ignore-certificate-errors-spki-list=${spki}`]);
    page = context.pages()[0] ?? await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("request", (r) => { if (!r.url().startsWith("https://")) insecure.push(r.url()); });

    // The page arrives over TLS, with the test CA's certificate.
    const response = await page.goto(url);
    check(response.ok(), `page status ${response.status()}`);
    const tls = await response.securityDetails();
    check(tls !== null, "the page came over TLS");
    check(tls.issuer === "amqpgw e2e test CA", `issuer ${tls.issuer}`);
    check(/^TLS 1\.[23]$/.test(tls.protocol), `protocol ${tls.protocol}`);
    console.log(`TLS: ${tls.protocol}, issued by ${tls.issuer}`);

    // The browser view works as over HTTP: status, a queue, publish, consume.
    await waitText(page.locator("#state-badge"), /^READY/, "state badge");
    const queue = `e2e-tls-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    await page.fill("#q-name", queue);
    await page.click("#declare-btn");
    const row = page.locator(`#queue-table tr[data-queue="${queue}"]`);
    await waitText(row.locator("[data-col=ready]"), /^0$/, "new queue's count");
    await row.locator("td.name a").click();
    const ready = page.locator('#qp-stats [data-stat="ready"] .n');
    await waitText(ready, /^0$/, "the queue's page");
    check(await page.inputValue("#p-routing-key") === queue, "publish form targets the queue");
    await page.fill("#p-count", "5");
    await page.click("#publish-btn");
    await waitText(page.locator("#publish-result"), /^5 of 5 confirmed$/, "batch result");
    await waitText(ready, /^5$/, "queue count after publish");
    await page.selectOption("#c-ack-mode", "1");
    await page.click("#consume-start");
    await waitCount(page.locator("#messages > li"), 5, "messages shown");
    await waitText(ready, /^0$/, "all consumed");
    await page.click("#consume-stop");
    await waitText(page.locator("#consume-state"), /^stopped$/, "consumer stopped");

    // A Connect GET from the page's own origin (no preflight, no CORS).
    const status = await page.evaluate(async () => {
      const r = await fetch("/amqpgw.v1.Gateway/GetStatus?connect=v1&encoding=json&message=%7B%7D");
      return { status: r.status, type: r.headers.get("content-type"), body: await r.json() };
    });
    check(status.status === 200, `Connect GET status ${status.status}`);
    check(status.type === "application/json", `Connect GET type ${status.type}`);
    check(status.body.connection.state === "READY", `Connect GET body ${JSON.stringify(status.body)}`);
    await page.screenshot({ path: join(ARTIFACTS, "web-e2e-https.png"), fullPage: true });

    check(insecure.length === 0, `every request over https (${insecure.join(", ")})`);
    check(pageErrors.length === 0, `no page errors (${pageErrors.join("; ")})`);
    console.log("e2e over https: all checks passed");
  } catch (e) {
    if (page) {
      await page.screenshot({ path: join(ARTIFACTS, "web-e2e-https-failure.png"), fullPage: true })
        .catch(() => {});
    }
    console.error(e.stack ?? e);
    console.error(`--- amqpgwd log ---\n${daemon.log().slice(-4000)}`);
    process.exitCode = 1;
  } finally {
    if (context) await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
    if (!(await stopDaemon(daemon))) process.exitCode = 1;
    rmSync(certs, { recursive: true, force: true });
  }
}

await main();
