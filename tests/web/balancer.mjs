// The browser view through HAProxy (docker/haproxy.cfg's HTTP frontend) in
// front of several gateways that forward Acks to each other. Run by
// web_browser_balancer (tests/web/browser_balancer_test.cc), which starts the
// gateways and HAProxy (GatewayRig, the same rig as balancer_test), fills
// the queue, and counts what is left in it afterwards.
//
// The page lists the queues, opens the queue, and consumes it with client
// acks; HAProxy's cookie keeps the browser on the gateway holding the
// stream. It acks the first ACK_HOLDER messages there, then the cookie is
// pointed at another gateway and it acks up to ACK_TOTAL: those Acks reach
// a gateway that does not hold the stream, which forwards them. Then it
// stops the stream (the rest goes back to the queue).
//
// Environment (set by the C++ driver):
//   AMQPGW_LB_URL       the page through HAProxy, http://127.0.0.1:PORT/
//   AMQPGW_LB_QUEUE     the queue, holding AMQPGW_LB_COUNT messages
//   AMQPGW_LB_GATEWAYS  HAProxy's server names (its cookie values), "gw1,gw2,gw3"
//   AMQPGW_LB_ACK_HOLDER, AMQPGW_LB_ACK_TOTAL  how many to ack (see above)
//   AMQPGW_ARTIFACTS    screenshots: web-balancer.png (web-balancer-failure.png)
// Prints "holder=NAME", "via=NAME", "acked=BODY,BODY,...", "seen=BODY,..."
// for the driver to count.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { check, launchChromium, mustEnv, waitCount, waitText } from "./harness.mjs";

const URL = mustEnv("AMQPGW_LB_URL");
const QUEUE = mustEnv("AMQPGW_LB_QUEUE");
const COUNT = Number(mustEnv("AMQPGW_LB_COUNT"));
const GATEWAYS = mustEnv("AMQPGW_LB_GATEWAYS").split(",");
const ACK_HOLDER = Number(mustEnv("AMQPGW_LB_ACK_HOLDER"));
const ACK_TOTAL = Number(mustEnv("AMQPGW_LB_ACK_TOTAL"));
const ARTIFACTS = process.env.AMQPGW_ARTIFACTS ?? join(tmpdir(), "amqpgw-artifacts");
const COOKIE = "AMQPGW_GATEWAY";  // docker/haproxy.cfg, backend gateways_http

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), "amqpgw-chromium-"));
  let context;
  let page;
  const pageErrors = [];
  try {
    context = await launchChromium(profile);
    page = context.pages()[0] ?? await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(URL);
    await waitText(page.locator("#state-badge"), /^READY/, "state badge through HAProxy");

    // The queues page lists the queue (the management API, through
    // whichever gateway HAProxy picked).
    const row = page.locator(`#queue-table tr[data-queue="${QUEUE}"]`);
    await page.fill("#qf-text", QUEUE);
    await waitCount(row, 1, "the queue listed");
    await waitText(row.locator("[data-col=ready]"), new RegExp(`^${COUNT}$`), "ready in the list");

    // Its page; consume with client acks.
    await row.locator("td.name a").click();
    await waitText(page.locator("#qp-name"), new RegExp(`^${QUEUE}$`), "the queue's page");
    const ready = page.locator('#qp-stats [data-stat="ready"] .n');
    check(await page.inputValue("#c-queue") === QUEUE, "consume form targets the queue");
    await page.selectOption("#c-ack-mode", "2");
    await page.click("#consume-start");
    await waitText(page.locator("#consume-state"), /^streaming$/, "consumer state");
    const messages = page.locator("#messages > li");
    await waitCount(messages, COUNT, "messages shown");
    const info = await waitText(page.locator("#consume-info"), /subscription \S+/, "subscription id");
    const holder = info.match(/subscription ([^/\s]+)\//)[1];
    // The stream went where the browser's cookie sends it.
    const cookie = () => context.cookies(URL).then((cs) => cs.find((c) => c.name === COOKIE));
    check((await cookie())?.value === holder,
          `cookie ${COOKIE}=${(await cookie())?.value} names the holder ${holder}`);
    console.log(`holder=${holder}`);

    const ackIds = async (from, to) => {
      for (let id = from; id <= to; id++) {
        await page.click(`#messages li[data-delivery-id="${id}"] button:text-is("Ack")`);
      }
    };
    const acked = page.locator('#messages li[data-state="acked"]');
    await ackIds(1, ACK_HOLDER);
    await waitCount(acked, ACK_HOLDER, "acks on the holder");

    // The cookie now names another gateway: the next Acks land there, and
    // it forwards them to the holder.
    const via = GATEWAYS.find((g) => g !== holder);
    await context.addCookies([{ name: COOKIE, value: via, url: URL }]);
    check((await cookie())?.value === via, `cookie now names ${via}`);
    console.log(`via=${via}`);
    await ackIds(ACK_HOLDER + 1, ACK_TOTAL);
    await waitCount(acked, ACK_TOTAL, "acks forwarded to the holder");
    check(!(await page.locator("#consume-error").isVisible()),
          `no consume error (${await page.locator("#consume-error").textContent()})`);
    await page.screenshot({ path: join(ARTIFACTS, "web-balancer.png"), fullPage: true });

    const bodies = (loc) => loc.evaluateAll(
      (els) => els.map((e) => e.querySelector(".msg-body").textContent));
    console.log(`acked=${(await bodies(acked)).join(",")}`);
    console.log(`seen=${(await bodies(messages)).join(",")}`);

    // Stop: what was not acked goes back to the queue.
    await page.click("#consume-stop");
    await waitText(page.locator("#consume-state"), /^stopped$/, "consumer stopped");
    await waitText(ready, new RegExp(`^${COUNT - ACK_TOTAL}$`), "ready after the stop");
    check(pageErrors.length === 0, `no page errors (${pageErrors.join("; ")})`);
    console.log("balancer: all checks passed");
  } catch (e) {
    if (page) {
      await page.screenshot({ path: join(ARTIFACTS, "web-balancer-failure.png"), fullPage: true })
        .catch(() => {});
    }
    console.error(e.stack ?? e);
    process.exitCode = 1;
  } finally {
    if (context) await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
}

await main();
