// Browser test of the view's pages against an amqpgwd of its own and the
// RabbitMQ node of ctest's `rabbitmq` fixture (management plugin on):
//   - a fresh browser (new profile, nothing in localStorage) sees queues
//     declared elsewhere (through the CLI), filters and sorts them, and the
//     list says how old it is;
//   - a queue's page: counts, chart, consumers (its own stream marked),
//     bindings, and its rates moving while the CLI publishes a load in the
//     background; purge and delete;
//   - the exchanges page: declare an exchange, bind a queue (an error first,
//     which the next success clears), the bindings, unbind;
//   - header types: a message published from the page with every type the
//     CLI knows carries exactly the headers the CLI itself sends for the
//     same KEY:TYPE=VALUE arguments (both read back through the CLI).
//
//   AMQPGWD=build/server/amqpgwd AMQPGW=build/client/amqpgw \
//   AMQPGW_TEST_NODE_DIR=build/test-rabbitmq \
//   AMQPGW_ARTIFACTS=build/test-artifacts node tests/web/pages.mjs
//
// Screenshots: $AMQPGW_ARTIFACTS/web-queues.png, web-queue.png,
// web-exchanges.png (web-pages-failure.png only on failure).
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WAIT, check, cli, launchChromium, mustEnv, startDaemon, stopDaemon, waitCount,
         waitFor, waitText } from "./harness.mjs";

const AMQPGWD = mustEnv("AMQPGWD");
const AMQPGW = mustEnv("AMQPGW");
const NODE_DIR = mustEnv("AMQPGW_TEST_NODE_DIR");
const ARTIFACTS = process.env.AMQPGW_ARTIFACTS ?? join(tmpdir(), "amqpgw-artifacts");

const tag = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

// The number in a cell ("1,234" or "0.5"), NaN for "—".
function num(text) {
  return Number(String(text).replace(/,/g, ""));
}

// Headers as `KEY:TYPE=VALUE` for the CLI and [name, type, value] for the
// page's form: one of each type the CLI knows.
const HEADERS = [
  ["s", "string", "héllo"],
  ["n", "int", "-9007199254740993"],
  ["f", "float", "2.5"],
  ["b", "bool", "yes"],
  ["raw", "bytes", "AAEC_w"],
  ["ts", "timestamp", "2024-05-01T12:00:00Z"],
  ["tsn", "timestamp", "1700000000"],
  ["j", "json", '{"region":"eu","hops":[1,2.5,true,null],"x":{}}'],
  ["d", "decimal", "12.34"],
  ["z", "null", ""],
];

// JSON with object keys sorted (map order is not part of a message).
function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v !== null && typeof v === "object") {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

async function readOne(server, queue) {
  const out = await cli(AMQPGW, server, ["consume", queue, "--max", "1", "--json", "--timeout", "20s"]);
  return JSON.parse(out.trim().split("\n")[0]);
}

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  const daemon = startDaemon(AMQPGWD, NODE_DIR);
  const profile = mkdtempSync(join(tmpdir(), "amqpgw-chromium-"));
  let context;
  let page;
  let load;
  const pageErrors = [];
  try {
    const url = await daemon.url;
    const server = await daemon.grpc;
    console.log(`page: ${url}, gRPC ${server}`);

    // Queues declared elsewhere, before the browser exists.
    const qa = `pages-${tag}-a`;
    const qb = `pages-${tag}-b`;
    const qc = `pages-${tag}-c`;
    for (const q of [qa, qb, qc]) await cli(AMQPGW, server, ["queue", "declare", q]);
    await cli(AMQPGW, server, ["publish", qb, "x", "--count", "7"]);
    await cli(AMQPGW, server, ["publish", qc, "x", "--count", "3"]);

    context = await launchChromium(profile);
    page = context.pages()[0] ?? await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(url);
    // Same-document navigation: the page (and its stream) stays.
    const setHash = (h) => page.evaluate((x) => { location.hash = x; }, h);
    await waitText(page.locator("#state-badge"), /^READY/, "state badge");

    // The queues page lists them (a fresh profile: nothing in localStorage).
    const row = (q) => page.locator(`#queue-table tr[data-queue="${q}"]`);
    await page.fill("#qf-text", `pages-${tag}-`);
    await waitCount(page.locator("#queue-table tbody tr"), 3, "the three queues declared by the CLI");
    check(await page.evaluate(() => localStorage.getItem("amqpgw.queues")) === null,
          "no queue list kept in localStorage");
    await waitText(row(qb).locator("[data-col=ready]"), /^7$/, "ready of b");
    await waitText(row(qc).locator("[data-col=ready]"), /^3$/, "ready of c");
    await waitText(row(qa).locator("[data-col=type]"), /^classic$/, "type of a");
    await waitText(page.locator("#queues-fresh"), /^updated \d+ s ago$/, "age of the list");
    check(await page.locator("#queues").getAttribute("data-stale") === "false", "the list is not stale");

    // Sorting: by name (default), then Ready (largest first), then again.
    const names = () => page.locator("#queue-table tbody tr").evaluateAll(
      (rows) => rows.map((r) => r.dataset.queue));
    check(JSON.stringify(await names()) === JSON.stringify([qa, qb, qc]), `sorted by name: ${await names()}`);
    await page.click('#queue-table th[data-sort="ready"]');
    await waitFor(async () => JSON.stringify(await names()) === JSON.stringify([qb, qc, qa]),
                  "sorted by ready, largest first");
    check(await page.getAttribute('#queue-table th[data-sort="ready"]', "aria-sort") === "descending",
          "aria-sort descending");
    await page.click('#queue-table th[data-sort="ready"]');
    await waitFor(async () => JSON.stringify(await names()) === JSON.stringify([qa, qc, qb]),
                  "sorted by ready, smallest first");

    // The filter: a regex that picks two, a prefix that picks one.
    await page.selectOption("#qf-kind", "regex");
    await page.fill("#qf-text", `^pages-${tag}-(a|c)$`);
    await waitFor(async () => JSON.stringify((await names()).sort()) === JSON.stringify([qa, qc]),
                  "regex filter");
    await page.selectOption("#qf-kind", "prefix");
    await page.fill("#qf-text", qb);
    await waitFor(async () => JSON.stringify(await names()) === JSON.stringify([qb]), "prefix filter");
    await page.fill("#qf-text", `pages-${tag}-`);
    await waitCount(page.locator("#queue-table tbody tr"), 3, "filter back");
    await page.screenshot({ path: join(ARTIFACTS, "web-queues.png") });
    console.log("queues page: listed, sorted, filtered");

    // A queue's page, by a click on its row.
    await row(qb).locator("td[data-col=ready]").click();
    await page.waitForURL(/#\/queues\/pages-/, { timeout: WAIT });
    await waitText(page.locator("#qp-name"), new RegExp(`^${qb}$`), "queue page's name");
    await waitText(page.locator('#qp-stats [data-stat="ready"] .n'), /^7$/, "ready on the queue page");
    await waitText(page.locator('#qp-facts [data-fact="state"]'), /running/, "state");
    await waitText(page.locator('#qp-facts [data-fact="flags"]'), /durable/, "flags");
    await waitCount(page.locator("#qp-chart canvas"), 1, "the chart");
    await waitCount(page.locator('#qp-bindings tr[data-exchange=""]'), 1, "the default exchange's binding");
    check(await page.inputValue("#p-routing-key") === qb, "publish form targets the queue");
    check(await page.inputValue("#c-queue") === qb, "consume form targets the queue");

    // Get messages: the first 7 (of 7) shown, left in the queue in order.
    await page.click("#qp-peek-btn");
    await waitCount(page.locator("#qp-peek li"), 7, "peeked messages");
    await waitText(page.locator("#qp-peek-note"), /put back in the queue/, "peek note");
    check(await page.locator("#qp-peek li .msg-flags").count() === 0, "a first peek: not redelivered");
    await waitText(page.locator('#qp-stats [data-stat="ready"] .n'), /^7$/, "ready unchanged by the peek");
    await page.click("#qp-peek-btn");
    await waitText(page.locator("#qp-peek li .msg-flags").first(), /redelivered/, "a second peek: redelivered");
    await waitText(page.locator('#qp-stats [data-stat="ready"] .n'), /^7$/, "ready unchanged by two peeks");

    // A load from the CLI in the background: the publish rate and the
    // depth move; a stream from the page shows as a consumer and delivers.
    // (Bursts of 25 every 100 ms: a steady rate the page can show without
    // the browser drowning in deliveries.)
    load = { on: true };
    load.done = (async () => {
      while (load.on) {
        await cli(AMQPGW, server, ["publish", qb, "load", "--count", "25", "--transient"]);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const stat = (k) => page.locator(`#qp-stats [data-stat="${k}"] .n`);
    await waitFor(async () => num(await stat("publish/s").textContent()) > 0, "publish rate under load");
    await waitFor(async () => num(await stat("ready").textContent()) > 7, "depth grows under load");
    await page.selectOption("#c-ack-mode", "1");
    await page.fill("#c-max", "0");
    await page.click("#consume-start");
    await waitText(page.locator("#consume-state"), /^streaming$/, "stream from the page");
    await waitFor(async () => num(await stat("deliver/s").textContent()) > 0, "deliver rate under load");
    await waitCount(page.locator("#qp-consumers tbody tr"), 1, "one consumer");
    await waitText(page.locator("#qp-consumers tbody tr td").first(), /this gateway/, "our own consumer marked");
    const points = await page.evaluate(() => document.querySelectorAll("#qp-chart canvas").length);
    check(points === 1, "chart drawn");
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(ARTIFACTS, "web-queue.png") });
    // The list shows the rates too.
    await page.click('nav a[data-nav="queues"]');
    await waitFor(async () => num(await row(qb).locator("[data-col=publish]").textContent()) > 0,
                  "publish rate in the list");
    await waitFor(async () => num(await row(qb).locator("[data-col=deliver]").textContent()) > 0,
                  "deliver rate in the list");
    load.on = false;
    await load.done;
    load = undefined;
    await setHash(`#/queues/${encodeURIComponent(qb)}`);
    await page.click("#consume-stop");
    await waitText(page.locator("#consume-state"), /^stopped$/, "stream stopped");
    await waitCount(page.locator("#qp-consumers tbody tr"), 0, "the consumer gone");
    console.log("queue page: counts, chart, consumers, bindings, rates under load");

    // Purge, then delete, from the queue page (two clicks each).
    await page.click('#qp-actions button:text-is("Purge")');
    await page.click('#qp-actions button:text-is("Purge?")');
    await waitText(page.locator('#qp-stats [data-stat="ready"] .n'), /^0$/, "purged");
    await page.click('#qp-actions button:text-is("Delete")');
    await page.click('#qp-actions button:text-is("Delete?")');
    await page.waitForURL(/#\/queues$/, { timeout: WAIT });
    await waitCount(row(qb), 0, "deleted queue gone from the list");
    await waitCount(row(qa), 1, "the others stay");
    console.log("purged and deleted");

    // Exchanges: declare one (topic), a bind that fails (no such queue),
    // then one that works, which clears the error; its bindings; unbind.
    const ex = `pages-${tag}-events`;
    await page.click('nav a[data-nav="exchanges"]');
    await waitCount(page.locator('#exchange-table tr[data-exchange="amq.topic"]'), 1, "amq.topic listed");
    await page.fill("#x-name", ex);
    await page.selectOption("#x-type", "3");
    await page.click("#x-declare-btn");
    const xrow = page.locator(`#exchange-table tr[data-exchange="${ex}"]`);
    await waitText(xrow.locator("[data-col=type]"), /^topic$/, "the new exchange listed as topic");
    await waitText(page.locator("#xb-name"), new RegExp(`^${ex}$`), "its bindings card");
    check(await page.inputValue("#b-exchange") === ex, "bind form takes the exchange");
    await page.fill("#b-queue", `${qa}-missing`);
    await page.fill("#b-routing-key", "orders.#");
    await page.click("#bind-btn");
    await waitText(page.locator("#bind-error"), /NOT_FOUND/, "bind to a missing queue");
    await page.fill("#b-queue", qa);
    await page.click("#bind-btn");
    await waitFor(async () => page.locator("#bind-error").isHidden(), "the error clears on success");
    const brow = page.locator(`#xb-table tr[data-destination="${qa}"]`);
    await waitText(brow.locator("td").nth(1), /^orders\.#$/, "the binding listed");
    // The toast (in the header) covers no form.
    const boxes = await page.evaluate(() => {
      const r = (e) => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
      return { toasts: [...document.querySelectorAll(".toast")].map(r),
               forms: [...document.querySelectorAll("form")].filter((f) => f.offsetParent !== null).map(r) };
    });
    check(boxes.toasts.length > 0, "a toast is shown");
    for (const t of boxes.toasts) {
      for (const f of boxes.forms) {
        const overlap = t[0] < f[2] && f[0] < t[2] && t[1] < f[3] && f[1] < t[3];
        check(!overlap, `toast ${t} covers a form ${f}`);
      }
    }
    await page.screenshot({ path: join(ARTIFACTS, "web-exchanges.png") });
    // The queue's page shows the binding too.
    await setHash(`#/queues/${encodeURIComponent(qa)}`);
    await waitCount(page.locator(`#qp-bindings tr[data-exchange="${ex}"]`), 1, "binding on the queue page");
    await setHash(`#/exchanges/${encodeURIComponent(ex)}`);
    await brow.locator('button:text-is("Unbind")').click();
    await brow.locator('button:text-is("Unbind?")').click();
    await waitCount(brow, 0, "unbound");
    console.log("exchanges: declared, bound (error cleared), unbound");

    // Header types: the page and the CLI publish the same headers.
    await setHash(`#/queues/${encodeURIComponent(qa)}`);
    await waitText(page.locator("#qp-name"), new RegExp(`^${qa}$`), "queue a's page");
    await page.click("#publish details summary");
    await page.click("#p-headers .header-row button");  // the default x-source row
    for (const [k, type, v] of HEADERS) {
      await page.click("#p-add-header");
      const r = page.locator("#p-headers .header-row").last();
      await r.locator("[data-h=key]").fill(k);
      await r.locator("[data-h=type]").selectOption(type);
      if (type !== "null") await r.locator("[data-h=value]").fill(v);
    }
    const types = await page.locator("#p-headers .header-row").first().locator("[data-h=type] option")
      .evaluateAll((os) => os.map((o) => o.value));
    check(JSON.stringify(types) === JSON.stringify(
      ["string", "int", "float", "bool", "bytes", "timestamp", "json", "decimal", "null"]),
          `the CLI's types offered: ${types}`);
    // A bad value is refused in the page, naming the header; nothing sent.
    await page.locator("#p-headers .header-row").nth(1).locator("[data-h=value]").fill("4x2");
    await page.fill("#p-count", "1");
    await page.click("#publish-btn");
    await waitText(page.locator("#publish-error"), /header n: "4x2" is not a 64-bit integer/, "bad int refused");
    await page.locator("#p-headers .header-row").nth(1).locator("[data-h=value]").fill(HEADERS[1][2]);
    await page.click("#publish-btn");
    await waitText(page.locator("#publish-result"), /^confirmed by the broker/, "published with headers");
    check(await page.locator("#publish-error").isHidden(), "the publish error cleared");
    const fromPage = await readOne(server, qa);
    await cli(AMQPGW, server, ["publish", qa, "cli", ...HEADERS.flatMap(([k, t, v]) => ["--header", `${k}:${t}=${v}`])]);
    const fromCli = await readOne(server, qa);
    const ph = fromPage.properties?.headers;
    const ch = fromCli.properties?.headers;
    check(ph !== undefined && Object.keys(ph).length === HEADERS.length, `page headers: ${JSON.stringify(ph)}`);
    check(canonical(ph) === canonical(ch),
          `page and CLI headers differ:\n page ${canonical(ph)}\n cli  ${canonical(ch)}`);
    console.log(`header types: ${HEADERS.map((x) => x[1]).join(", ")} as the CLI sends them`);

    check(pageErrors.length === 0, `no page errors (${pageErrors.join("; ")})`);
    for (const q of [qa, qc]) await cli(AMQPGW, server, ["queue", "delete", q]);
    await cli(AMQPGW, server, ["exchange", "delete", ex]);
    console.log("pages: all checks passed");
  } catch (e) {
    if (page) {
      await page.screenshot({ path: join(ARTIFACTS, "web-pages-failure.png"), fullPage: true })
        .catch(() => {});
    }
    console.error(e.stack ?? e);
    console.error(`--- amqpgwd log ---\n${daemon.log().slice(-4000)}`);
    process.exitCode = 1;
  } finally {
    if (load) {
      load.on = false;
      await load.done.catch(() => {});
    }
    if (context) await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
    if (!(await stopDaemon(daemon))) process.exitCode = 1;
  }
}

await main();
