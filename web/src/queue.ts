// One queue's page (#/queues/<name>): its counts and rates, a chart of
// depth and rates over the last minutes (history.ts, chart.ts), arguments
// and policy (InspectQueue, with the management API's details when there),
// its consumers (ListConsumers) and bindings (ListBindings), and the
// actions: publish and consume (the cards below), purge and delete.
// Refreshed every 2 s while shown.
import { describeError, gateway, within } from "./api";
import { renderDelivery } from "./consume";
import { QueueChart } from "./chart";
import { byId, confirmButton, h } from "./dom";
import { formatField, plural } from "./format";
import { Freshness } from "./fresh";
import { type InspectQueueResponse, type QueueInfo } from "./gen/amqpgw/v1/gateway";
import { forgetQueue, recordInfo, recordReady, samples } from "./history";
import { clearError, log, reportError, toast } from "./log";
import { formatRate, queueTypeName, refreshQueues } from "./queues";
import { exchangeHref, navigate, registerView } from "./router";

const REFRESH_MS = 2000;

let queue: string | undefined;
let timer: number | undefined;
let inFlight = false;
let fresh: Freshness;
let chart: QueueChart;
let onQueueShown: (name: string) => void = () => {};

// Called with the queue's name when its page opens (the publish and
// consume cards take it as their target).
export function setOnQueueShown(f: (name: string) => void): void {
  onQueueShown = f;
}

function stat(key: string, value: string): HTMLElement {
  return h("div", { class: "counter", "data-stat": key }, h("div", { class: "n" }, value), h("div", { class: "k" }, key));
}

function renderStats(r: InspectQueueResponse): void {
  const d = r.details;
  const items: HTMLElement[] = d === undefined
    ? [stat("ready", String(r.messageCount)), stat("consumers", String(r.consumerCount))]
    : [stat("ready", d.ready), stat("unacked", d.unacked), stat("total", d.total), stat("consumers", d.consumers),
       stat("publish/s", formatRate(d.rates?.publish)), stat("deliver/s", formatRate(d.rates?.deliver)),
       stat("ack/s", formatRate(d.rates?.ack)), stat("redeliver/s", formatRate(d.rates?.redeliver))];
  byId("qp-stats").replaceChildren(...items);
}

function fact(k: string, v: Node | string): Node[] {
  return [h("dt", {}, k), h("dd", { "data-fact": k }, v)];
}

function renderFacts(r: InspectQueueResponse): void {
  const d: QueueInfo | undefined = r.details;
  byId("qp-type").textContent = d === undefined ? "" : queueTypeName(d.type);
  if (d === undefined) {
    byId("qp-facts").replaceChildren(...fact("details",
      `not available: ${r.detailsUnavailable || "the management API did not answer"} (counts from AMQP only)`));
    return;
  }
  const args = Object.entries(d.arguments).sort(([a], [b]) => a.localeCompare(b));
  const flags = [d.durable ? "durable" : "transient", d.autoDelete ? "auto-delete" : "", d.exclusive ? "exclusive" : ""]
    .filter(Boolean).join(", ");
  byId("qp-facts").replaceChildren(
    ...fact("state", d.state + (d.membersDown.length ? ` (members down: ${d.membersDown.join(", ")})` : "")),
    ...fact("flags", flags),
    ...fact("node", d.node || "—"),
    ...fact("policy", d.policy || "none"),
    ...fact("arguments", args.length === 0 ? "none" : h("table", { class: "kv" },
      ...args.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, formatField(v)))))),
    ...fact("consumer utilisation", d.consumerUtilisation === undefined ? "—"
      : `${Math.round(d.consumerUtilisation * 100)} %`),
    ...fact("memory", `${(Number(d.memoryBytes) / 1024).toFixed(1)} KiB`));
}

async function refreshInfo(name: string): Promise<void> {
  try {
    const { response } = await gateway().inspectQueue({ name }, within(8000));
    if (queue !== name) return;
    if (response.details !== undefined) recordInfo(response.details);
    else recordReady(name, response.messageCount);
    renderStats(response);
    renderFacts(response);
    chart.update(samples(name));
    clearError("qp-error");
    fresh.ok();
    byId("queue-card").dataset.status = "ok";
  } catch (e) {
    if (queue !== name) return;
    const err = describeError(e);
    fresh.fail(err);
    byId("queue-card").dataset.status = err.code === "NOT_FOUND" ? "missing" : "error";
    reportError("qp-error", "InspectQueue", e, !byId("qp-error").hidden);
  }
}

async function refreshConsumers(name: string): Promise<void> {
  try {
    const { response } = await gateway().listConsumers({ queue: name }, within(8000));
    if (queue !== name) return;
    byId("qp-consumers").querySelector("tbody")!.replaceChildren(...response.consumers.map((c) =>
      h("tr", { "data-consumer": c.consumerTag },
        h("td", { class: "mono" }, c.consumerTag, c.gatewayOwn ? h("span", { class: "tag" }, "this gateway") : null),
        h("td", {}, c.connectionName || c.connection),
        h("td", { class: "num" }, String(c.prefetch)),
        h("td", {}, c.ackRequired ? "manual" : "auto"),
        h("td", {}, c.active ? "active" : "waiting"))));
    byId("qp-consumers-empty").hidden = response.consumers.length > 0;
    clearError("qp-consumers-error");
  } catch (e) {
    if (queue !== name) return;
    reportError("qp-consumers-error", "ListConsumers", e, true);
  }
}

async function refreshBindings(name: string): Promise<void> {
  try {
    const { response } = await gateway().listBindings({ of: { oneofKind: "queue", queue: name } }, within(8000));
    if (queue !== name) return;
    byId("qp-bindings").querySelector("tbody")!.replaceChildren(...response.bindings.map((b) => {
      const args = Object.entries(b.arguments).map(([k, v]) => `${k}=${formatField(v)}`).join(", ");
      return h("tr", { "data-exchange": b.exchange },
        h("td", {}, h("a", { href: exchangeHref(b.exchange) }, b.exchange || "(default)")),
        h("td", { class: "mono" }, b.routingKey),
        h("td", { class: "mono small" }, args || "—"));
    }));
    clearError("qp-bindings-error");
  } catch (e) {
    if (queue !== name) return;
    reportError("qp-bindings-error", "ListBindings", e, true);
  }
}

export async function refreshQueuePage(): Promise<void> {
  const name = queue;
  if (name === undefined || inFlight) return;
  inFlight = true;
  try {
    await Promise.all([refreshInfo(name), refreshConsumers(name), refreshBindings(name)]);
  } finally {
    inFlight = false;
  }
}

// After a publish, consume or ack: refresh now when it is the queue shown.
export function refreshQueue(name: string): void {
  if (name === queue) void refreshQueuePage();
}

function schedule(): void {
  window.clearTimeout(timer);
  if (queue === undefined) return;
  timer = window.setTimeout(async () => {
    if (document.visibilityState !== "hidden") await refreshQueuePage();
    schedule();
  }, REFRESH_MS);
}

async function purge(name: string): Promise<void> {
  clearError("qp-action-error");
  try {
    const { response } = await gateway().purgeQueue({ name }, within(15000));
    log("ok", `purged ${plural(response.messageCount, "message")} from ${name}`);
    toast("ok", `purged ${response.messageCount} from ${name}`);
  } catch (e) {
    reportError("qp-action-error", "PurgeQueue", e);
  }
  refreshQueue(name);
}

// How many messages "Get messages" shows.
const PEEK_COUNT = 10;

// GetMessages without ack: the first messages of the queue, put back in
// their order (now marked redelivered).
async function peek(name: string): Promise<void> {
  clearError("qp-action-error");
  try {
    const { response } = await gateway().getMessages({ queue: name, count: PEEK_COUNT, ack: false }, within(15000));
    const n = response.messages.length;
    byId("qp-peek").replaceChildren(...response.messages.map((d) => renderDelivery(d, false)));
    byId("qp-peek-note").textContent = n === 0
      ? "No ready messages to show."
      : `The first ${plural(n, "message")}, put back in the queue in their order (now marked redelivered).`;
    byId("qp-peek-box").hidden = false;
    log("ok", `looked at ${plural(n, "message")} of ${name}`);
  } catch (e) {
    reportError("qp-action-error", "GetMessages", e);
  }
  refreshQueue(name);
}

async function remove(name: string): Promise<void> {
  clearError("qp-action-error");
  try {
    const { response } = await gateway().deleteQueue({ name, ifUnused: false, ifEmpty: false }, within(15000));
    forgetQueue(name);
    if (response.existed === false) {
      log("ok", `queue ${name} did not exist`);
      toast("info", `queue ${name} did not exist`);
    } else {
      log("ok", `deleted queue ${name} (${plural(response.messageCount, "message")} with it)`);
      toast("ok", `queue ${name} deleted`);
    }
    navigate("#/queues");
    void refreshQueues();
  } catch (e) {
    reportError("qp-action-error", "DeleteQueue", e);
  }
}

function enter(name: string): void {
  if (queue !== name) {
    queue = name;
    inFlight = false;
    fresh.reset();
    for (const id of ["qp-error", "qp-action-error", "qp-consumers-error", "qp-bindings-error"]) clearError(id);
    byId("qp-name").textContent = name;
    byId("qp-type").textContent = "";
    byId("qp-stats").replaceChildren();
    byId("qp-facts").replaceChildren();
    byId("qp-consumers").querySelector("tbody")!.replaceChildren();
    byId("qp-bindings").querySelector("tbody")!.replaceChildren();
    byId("qp-peek").replaceChildren();
    byId("qp-peek-box").hidden = true;
    byId("qp-actions").replaceChildren(
      h("button", { type: "button", onclick: () => byId("publish").scrollIntoView({ block: "start" }) }, "Publish…"),
      h("button", { type: "button", onclick: () => byId("consume").scrollIntoView({ block: "start" }) }, "Consume…"),
      h("button", { type: "button", id: "qp-peek-btn", title: `Show the first ${PEEK_COUNT} messages and leave them in the queue`, onclick: () => void peek(name) }, "Get messages"),
      confirmButton("Purge", "Purge?", () => void purge(name), "Remove its ready messages"),
      confirmButton("Delete", "Delete?", () => void remove(name), "Delete the queue"));
    for (const b of byId("qp-actions").querySelectorAll("button")) b.classList.remove("small-btn");
    chart.clear();
    onQueueShown(name);
  }
  chart.update(samples(name));
  void refreshQueuePage();
  schedule();
}

export function initQueuePage(): void {
  fresh = new Freshness(byId("qp-fresh"), byId("view-queue"));
  chart = new QueueChart(byId("qp-chart"));
  registerView("queue", {
    enter: (r) => enter(r.name ?? ""),
    leave: () => {
      queue = undefined;
      window.clearTimeout(timer);
    },
  });
}
