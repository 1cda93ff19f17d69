// Browser test of truthful outage states, against amqpgwd processes of its
// own and the RabbitMQ node of ctest's `rabbitmq` fixture:
//   - the gateway stops (SIGTERM): the header and the session card say
//     UNAVAILABLE (never READY), the queue list and the session card are
//     marked stale with their age, the list's error says UNAVAILABLE;
//   - it comes back on the same port: the errors clear, the data is fresh;
//   - a gateway whose management API is not there (nothing listens at its
//     --management_url): the queues page says listing is unavailable with
//     the server's message, and a queue opened by name still shows its
//     counts from AMQP.
//
//   AMQPGWD=build/server/amqpgwd AMQPGW=build/client/amqpgw \
//   AMQPGW_TEST_NODE_DIR=build/test-rabbitmq \
//   AMQPGW_ARTIFACTS=build/test-artifacts node tests/web/outage.mjs
//
// Screenshots: $AMQPGW_ARTIFACTS/web-outage.png, web-no-listing.png
// (web-outage-failure.png only on failure).
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { check, cli, launchChromium, mustEnv, startDaemon, stopDaemon, waitText } from "./harness.mjs";

const AMQPGWD = mustEnv("AMQPGWD");
const AMQPGW = mustEnv("AMQPGW");
const NODE_DIR = mustEnv("AMQPGW_TEST_NODE_DIR");
const ARTIFACTS = process.env.AMQPGW_ARTIFACTS ?? join(tmpdir(), "amqpgw-artifacts");

const tag = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

// A loopback port nothing listens on (bound, then closed).
function closedPort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  let daemon = startDaemon(AMQPGWD, NODE_DIR);
  let noListing;
  const profile = mkdtempSync(join(tmpdir(), "amqpgw-chromium-"));
  let context;
  let page;
  const pageErrors = [];
  const queue = `outage-${tag}`;
  try {
    const url = await daemon.url;
    const server = await daemon.grpc;
    const httpListen = new URL(url).host;
    await cli(AMQPGW, server, ["queue", "declare", queue]);
    await cli(AMQPGW, server, ["publish", queue, "x", "--count", "4"]);

    context = await launchChromium(profile);
    page = context.pages()[0] ?? await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(url);
    await waitText(page.locator("#state-badge"), /^READY/, "state badge");
    await page.fill("#qf-text", queue);
    // The filtered list, not the one loaded before the filter applied
    // (applying it resets the list's age: "no data" if the gateway is
    // gone by then).
    await waitText(page.locator(`#queues[data-filter="${queue}"] #queues-fresh`), /^updated \d+ s ago$/, "the filtered list");
    const row = page.locator(`#queue-table tr[data-queue="${queue}"]`);
    await waitText(row.locator("[data-col=ready]"), /^4$/, "the queue listed");
    await waitText(page.locator("#queues-fresh"), /^updated \d+ s ago$/, "fresh list");

    // The gateway goes away.
    check(await stopDaemon(daemon), "amqpgwd stops on SIGTERM");
    await waitText(page.locator("#state-badge"), /^UNAVAILABLE/, "badge says UNAVAILABLE");
    await waitText(page.locator("#conn-state"), /^UNAVAILABLE: no answer from the gateway/, "session card");
    check(!/READY/.test(await page.locator("#conn-state").textContent()), "the session card does not say READY");
    check(!/READY/.test(await page.locator("#state-badge").textContent()), "the badge does not say READY");
    await waitText(page.locator("#connection-fresh"), /^stale · updated \d+ s ago \(UNAVAILABLE\)$/, "session card stale");
    await waitText(page.locator("#queues-fresh"), /^stale · updated \d+ s ago \(UNAVAILABLE\)$/, "list stale");
    check(await page.locator("#queues").getAttribute("data-stale") === "true", "the list is marked stale");
    await waitText(page.locator("#queues-list-error"), /UNAVAILABLE.*ListQueues/, "the list's error");
    await waitText(row.locator("[data-col=ready]"), /^4$/, "the last data stays on screen");
    // The age grows while it is stale.
    const age = async () => Number((await page.locator("#queues-fresh").textContent()).match(/(\d+) s/)[1]);
    const first = await age();
    await waitText(page.locator("#queues-fresh"), new RegExp(`updated (?!${first} s)\\d+ s ago`), "the age grows");
    await page.screenshot({ path: join(ARTIFACTS, "web-outage.png") });
    console.log("gateway down: UNAVAILABLE, stale with its age");

    // Back on the same port: errors clear, data fresh again.
    daemon = startDaemon(AMQPGWD, NODE_DIR, [], httpListen);
    await daemon.url;
    await waitText(page.locator("#state-badge"), /^READY/, "READY again");
    await waitText(page.locator("#queues-fresh"), /^updated \d+ s ago$/, "list fresh again");
    check(await page.locator("#queues-list-error").isHidden(), "the list's error cleared");
    check(await page.locator("#connection-error").isHidden(), "the session card's error cleared");
    check(await page.locator("#queues").getAttribute("data-stale") === "false", "not stale");
    console.log("gateway back: errors cleared, fresh");

    // A gateway without the management API.
    noListing = startDaemon(AMQPGWD, NODE_DIR, [`--management_url=http://127.0.0.1:${await closedPort()}/`]);
    const url2 = await noListing.url;
    await page.goto(url2);
    await waitText(page.locator("#state-badge"), /^READY/, "second gateway READY");
    await waitText(page.locator("#queues-unavailable"), /Listing is unavailable\..*rabbitmq-plugins enable rabbitmq_management/,
                   "the queues page says why, with the server's message");
    check(await page.locator("#queues-list-error").isHidden(), "not shown as a failure of the page");
    await page.fill("#q-name", queue);
    await page.click("#open-btn");
    await waitText(page.locator('#qp-stats [data-stat="ready"] .n'), /^4$/, "counts from AMQP");
    await waitText(page.locator('#qp-facts [data-fact="details"]'), /not available/, "details unavailable said");
    await waitText(page.locator("#qp-consumers-error"), /FAILED_PRECONDITION/, "consumers need the API");
    await page.click('nav a[data-nav="queues"]');
    await waitText(page.locator("#queues-unavailable"), /Listing is unavailable/, "still said");
    await page.screenshot({ path: join(ARTIFACTS, "web-no-listing.png") });
    console.log("no management API: said, queue opened by name");

    check(pageErrors.length === 0, `no page errors (${pageErrors.join("; ")})`);
    await cli(AMQPGW, await daemon.grpc, ["queue", "delete", queue]);
    console.log("outage: all checks passed");
  } catch (e) {
    if (page) {
      await page.screenshot({ path: join(ARTIFACTS, "web-outage-failure.png"), fullPage: true })
        .catch(() => {});
    }
    console.error(e.stack ?? e);
    console.error(`--- amqpgwd log ---\n${daemon.log().slice(-3000)}`);
    process.exitCode = 1;
  } finally {
    if (context) await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
    if (daemon.child.exitCode === null && !(await stopDaemon(daemon))) process.exitCode = 1;
    if (noListing && !(await stopDaemon(noListing))) process.exitCode = 1;
  }
}

await main();
