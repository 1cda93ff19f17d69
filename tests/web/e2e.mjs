// Browser end-to-end test of amqpgw's page: Debian's headless chromium,
// driven by playwright-core, against an amqpgwd of its own and the RabbitMQ
// node of ctest's `rabbitmq` fixture. No network beyond loopback.
//
//   AMQPGWD=build/server/amqpgwd AMQPGW_TEST_NODE_DIR=build/test-rabbitmq \
//   AMQPGW_ARTIFACTS=build/test-artifacts node tests/web/e2e.mjs
//
// Screenshots: $AMQPGW_ARTIFACTS/web-e2e.png (laptop width, with messages),
// web-e2e-phone.png (phone width), web-e2e-failure.png (only on failure).
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WAIT, check, launchChromium, mustEnv, startDaemon, stopDaemon, waitCount,
         waitText } from "./harness.mjs";

const AMQPGWD = mustEnv("AMQPGWD");
const NODE_DIR = mustEnv("AMQPGW_TEST_NODE_DIR");
const ARTIFACTS = process.env.AMQPGW_ARTIFACTS ?? join(tmpdir(), "amqpgw-artifacts");

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  const daemon = startDaemon(AMQPGWD, NODE_DIR);
  const profile = mkdtempSync(join(tmpdir(), "amqpgw-chromium-"));
  let context;
  let page;
  const pageErrors = [];
  try {
    const url = await daemon.url;
    console.log(`page: ${url}`);
    context = await launchChromium(profile);
    page = context.pages()[0] ?? await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(url);

    // Connection.
    await waitText(page.locator("#state-badge"), /^READY/, "state badge");
    await waitText(page.locator("#conn-server"), /RabbitMQ/, "server product");
    await waitText(page.locator("#gw-version"), /^v\d/, "gateway version");

    // Declare a queue.
    const queue = `e2e-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    await page.fill("#q-name", queue);
    await page.click("#declare-btn");
    const row = page.locator(`#queue-table tr[data-queue="${queue}"]`);
    await waitText(row.locator("[data-col=ready]"), /^0$/, "new queue's count");
    console.log(`declared ${queue}`);

    // Its page: publish and consume live there.
    await row.locator("td.name a").click();
    await waitText(page.locator("#qp-name"), new RegExp(`^${queue}$`), "the queue's page");
    const ready = page.locator('#qp-stats [data-stat="ready"] .n');
    const consumers = page.locator('#qp-stats [data-stat="consumers"] .n');

    // Publish a batch of 50.
    check(await page.inputValue("#p-routing-key") === queue, "publish form targets the queue");
    await page.fill("#p-count", "50");
    await page.click("#publish-btn");
    await waitText(page.locator("#publish-result"), /^50 of 50 confirmed$/, "batch result");
    await waitText(page.locator("#p-progress-text"), /50 \/ 50 sent · 50 confirmed/, "progress");
    await waitText(ready, /^50$/, "queue count after publish");
    console.log("published 50");

    // Consume in CLIENT mode: all 50 appear, newest first.
    check(await page.inputValue("#c-queue") === queue, "consume form targets the queue");
    await page.selectOption("#c-ack-mode", "2");
    await page.click("#consume-start");
    await waitText(page.locator("#consume-state"), /^streaming$/, "consumer state");
    const messages = page.locator("#messages > li");
    await waitCount(messages, 50, "messages shown");
    await waitText(messages.first().locator(".msg-id"), /^#50$/, "newest first");
    await waitText(messages.first().locator(".msg-body"), /^Hello from amqpgw, message 50$/, "body");
    await waitText(messages.last().locator(".msg-body"), /^Hello from amqpgw, message 1$/, "oldest last");
    await waitText(consumers, /^1$/, "consumer count");
    await messages.first().locator("details summary").click();
    await waitText(messages.first().locator("table.kv"), /header x-source.*amqpgw-web/, "headers shown");
    await page.screenshot({ path: join(ARTIFACTS, "web-e2e.png"), fullPage: true });
    console.log("consumed 50 (screenshot saved)");

    // Ack 9 and reject 1 (ids 1..10), requeue one (id 11: redelivered).
    for (let id = 1; id <= 9; id++) {
      await page.click(`#messages li[data-delivery-id="${id}"] button:text-is("Ack")`);
    }
    await page.click(`#messages li[data-delivery-id="10"] button:text-is("Reject")`);
    await page.click(`#messages li[data-delivery-id="11"] button:text-is("Requeue")`);
    await waitCount(page.locator('#messages li[data-state="acked"]'), 9, "acked messages");
    await waitCount(page.locator('#messages li[data-state="rejected"]'), 1, "rejected messages");
    await waitCount(messages, 51, "the requeued message comes back");
    await waitText(messages.first().locator(".msg-flags"), /redelivered/, "redelivered flag");
    await waitText(messages.first().locator(".msg-body"), /^Hello from amqpgw, message 11$/, "redelivered body");
    // Retry one (id 12): acked once its copy is in the 10 s delay queue, back
    // afterwards as attempt 2.
    await page.click(`#messages li[data-delivery-id="12"] button:text-is("Retry")`);
    await waitCount(page.locator('#messages li[data-state="retried"]'), 1, "retried message");
    await waitCount(messages, 52, "the retried message comes back after its delay");
    await waitText(messages.first().locator(".msg-flags"), /attempt 2/, "attempt 2");
    await waitText(messages.first().locator(".msg-body"), /^Hello from amqpgw, message 12$/, "retried body");

    // Stop: the 40 unacked go back to the queue; the 10 acked/rejected do not.
    await page.click("#consume-stop");
    await waitText(page.locator("#consume-state"), /^stopped$/, "consumer stopped");
    await waitText(ready, /^40$/, "queue count falls to 40");
    await waitText(consumers, /^0$/, "consumer gone");
    console.log("acked 9, rejected 1, requeued 1; 40 left");

    // Errors are shown with their code: a reserved name, a missing queue.
    await page.click('nav a[data-nav="queues"]');
    await page.fill("#q-name", "amq.e2e-reserved");
    await page.click("#declare-btn");
    await waitText(page.locator("#queues-error"), /PERMISSION_DENIED/, "error for a reserved name");
    check(await page.locator("#queues-error").isVisible(), "error line visible");
    await page.fill("#q-name", `${queue}-missing`);
    await page.click("#open-btn");
    await waitText(page.locator("#qp-error"), /NOT_FOUND.*missing/, "error for a missing queue");
    await waitText(page.locator("#log"), /InspectQueue failed: NOT_FOUND/, "error in the activity log");
    await page.click('nav a[data-nav="queues"]');
    await row.locator("td.name a").click();
    await waitText(ready, /^40$/, "back on the queue's page");
    console.log("errors shown");

    // grpc-web-text: one message in text mode.
    await page.click("#connection details.settings summary");
    await page.selectOption("#wire-format", "text");
    await page.fill("#p-count", "1");
    await page.click("#publish-btn");
    await waitText(page.locator("#publish-result"), /^confirmed by the broker/, "text-mode publish");
    await waitText(ready, /^41$/, "count after text-mode publish");
    await waitText(page.locator("#state-badge"), /^READY/, "status over grpc-web-text");
    await page.selectOption("#wire-format", "binary");

    // Disconnect (an open stream ends UNAVAILABLE) and reconnect.
    await page.click("#clear-messages");
    await waitCount(messages, 0, "history cleared");
    await page.selectOption("#c-ack-mode", "1");
    await page.click("#consume-start");
    await waitCount(messages, 41, "AUTO consumer receives the 41", WAIT);
    await page.click("#disconnect-btn");
    await waitText(page.locator("#state-badge"), /^DISCONNECTED/, "disconnected");
    await waitText(page.locator("#consume-error"), /UNAVAILABLE/, "stream ended by Disconnect");
    await waitText(page.locator("#consume-state"), /^failed$/, "consumer failed");
    await page.click("#connect-btn");
    await waitText(page.locator("#state-badge"), /^READY/, "reconnected");
    await waitText(page.locator("#conn-reconnects"), /^\d+$/, "reconnects shown");
    console.log("disconnected and reconnected");

    // Phone width: one column, nothing wider than the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForFunction(
      () => document.documentElement.scrollWidth <= window.innerWidth + 1,
      null, { timeout: WAIT });
    await page.screenshot({ path: join(ARTIFACTS, "web-e2e-phone.png"), fullPage: false });
    await page.setViewportSize({ width: 1400, height: 1000 });

    // Delete the queue from its page (two clicks): back to the list.
    await page.click('#qp-actions button:text-is("Delete")');
    await page.click('#qp-actions button:text-is("Delete?")');
    await page.waitForURL(/#\/queues$/, { timeout: WAIT });
    await waitCount(page.locator(`#queue-table tr[data-queue="${queue}"]`), 0, "deleted queue row");

    check(pageErrors.length === 0, `no page errors (${pageErrors.join("; ")})`);
    console.log("e2e: all checks passed");
  } catch (e) {
    if (page) {
      await page.screenshot({ path: join(ARTIFACTS, "web-e2e-failure.png"), fullPage: true })
        .catch(() => {});
    }
    console.error(e.stack ?? e);
    console.error(`--- amqpgwd log ---\n${daemon.log().slice(-4000)}`);
    process.exitCode = 1;
  } finally {
    if (context) await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
    if (!(await stopDaemon(daemon))) process.exitCode = 1;
  }
}

await main();
