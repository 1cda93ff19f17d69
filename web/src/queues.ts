// The Queues section: declare (type and options), inspect, purge, delete,
// and the queues this browser knows with live counts. The API has no
// ListQueues: the list is the queues declared or inspected here (kept in
// localStorage), refreshed with InspectQueue.
import { RpcError } from "@protobuf-ts/runtime-rpc";
import { gateway, within } from "./api";
import { button, byId, confirmButton, h, input, optionalNumber, select } from "./dom";
import { intField, plural, stringField } from "./format";
import { type FieldValue, QueueType } from "./gen/amqpgw/v1/gateway";
import { clearError, log, reportError, toast } from "./log";

const STORE_KEY = "amqpgw.queues";
const REFRESH_MS = 2000;
const MAX_TRACKED = 100;

interface Known {
  name: string;
  type?: string;
}

interface Row {
  tr: HTMLTableRowElement;
  messages: HTMLTableCellElement;
  consumers: HTMLTableCellElement;
}

let known: Known[] = load();
const rows = new Map<string, Row>();
const listeners: Array<(names: string[]) => void> = [];
let actions = { consume: (_name: string) => {}, publish: (_name: string) => {} };
let refreshing = false;

function load(): Known[] {
  try {
    const v = JSON.parse(localStorage.getItem(STORE_KEY) ?? "[]");
    return Array.isArray(v) ? v.filter((k) => typeof k?.name === "string") : [];
  } catch {
    return [];
  }
}

function save(): void {
  localStorage.setItem(STORE_KEY, JSON.stringify(known));
  const names = known.map((k) => k.name);
  byId("queue-names").replaceChildren(...names.map((n) => h("option", { value: n })));
  byId("queues-empty").hidden = names.length > 0;
  for (const f of listeners) f(names);
}

export function knownQueues(): string[] {
  return known.map((k) => k.name);
}

export function onQueuesChanged(f: (names: string[]) => void): void {
  listeners.push(f);
}

export function setQueueActions(a: typeof actions): void {
  actions = a;
}

function typeName(t: QueueType): string | undefined {
  return t === QueueType.QUORUM ? "quorum" : t === QueueType.STREAM ? "stream" : undefined;
}

// Adds `name` to the list (first), or moves it there.
export function trackQueue(name: string, type?: string): void {
  const old = known.find((k) => k.name === name);
  known = [{ name, type: type ?? old?.type }, ...known.filter((k) => k.name !== name)]
    .slice(0, MAX_TRACKED);
  save();
  renderRows();
  void refreshOne(name);
}

function forget(name: string): void {
  known = known.filter((k) => k.name !== name);
  save();
  renderRows();
}

function makeRow(k: Known): Row {
  const messages = h("td", { class: "num", "data-col": "messages" }, "…");
  const consumers = h("td", { class: "num", "data-col": "consumers" }, "…");
  const ops = h("div", { class: "actions" },
    h("button", { type: "button", class: "small-btn", onclick: () => actions.consume(k.name) }, "Consume"),
    h("button", { type: "button", class: "small-btn", onclick: () => actions.publish(k.name) }, "Publish"),
    confirmButton("Purge", "Purge?", () => void purge(k.name), "Remove its ready messages"),
    confirmButton("Delete", "Delete?", () => void remove(k.name), "Delete the queue"),
    h("button", { type: "button", class: "small-btn", title: "Forget (the queue stays)", "aria-label": `forget ${k.name}`,
                  onclick: () => forget(k.name) }, "×"));
  const tr = h("tr", { "data-queue": k.name, "data-status": "pending" },
    h("td", { class: "name" }, k.name, k.type ? h("span", { class: "tag" }, k.type) : null),
    messages, consumers, h("td", { class: "ops" }, ops));
  return { tr, messages, consumers };
}

function renderRows(): void {
  const body = byId("queue-table").querySelector("tbody")!;
  const next: HTMLTableRowElement[] = [];
  for (const k of known) {
    let row = rows.get(k.name);
    if (row === undefined) {
      row = makeRow(k);
      rows.set(k.name, row);
    }
    next.push(row.tr);
  }
  for (const name of [...rows.keys()]) {
    if (!known.some((k) => k.name === name)) rows.delete(name);
  }
  body.replaceChildren(...next);
}

async function refreshOne(name: string): Promise<void> {
  const row = rows.get(name);
  if (row === undefined) return;
  try {
    const { response } = await gateway().inspectQueue({ name }, within(5000));
    row.tr.dataset.status = "ok";
    row.messages.textContent = String(response.messageCount);
    row.consumers.textContent = String(response.consumerCount);
    row.tr.title = "";
  } catch (e) {
    const gone = e instanceof RpcError && e.code === "NOT_FOUND";
    row.tr.dataset.status = gone ? "missing" : "error";
    row.messages.textContent = gone ? "gone" : "?";
    row.consumers.textContent = gone ? "" : "?";
    row.tr.title = e instanceof Error ? e.message : String(e);
  }
}

async function refreshAll(): Promise<void> {
  if (refreshing || document.visibilityState === "hidden") return;
  refreshing = true;
  try {
    // Two at a time: the browser has six connections per host, and a
    // stream, the status poll and the user's calls need theirs.
    const names = knownQueues();
    for (let i = 0; i < names.length; i += 2) {
      await Promise.all(names.slice(i, i + 2).map(refreshOne));
    }
  } finally {
    refreshing = false;
  }
}

export function refreshQueue(name: string): void {
  void refreshOne(name);
}

function declareArguments(): Record<string, FieldValue> {
  const args: Record<string, FieldValue> = {};
  const ttl = optionalNumber("q-ttl");
  const maxLength = optionalNumber("q-max-length");
  const maxPriority = optionalNumber("q-max-priority");
  if (ttl !== undefined) args["x-message-ttl"] = intField(ttl);
  if (maxLength !== undefined) args["x-max-length"] = intField(maxLength);
  if (maxPriority !== undefined) args["x-max-priority"] = intField(maxPriority);
  const overflow = select("q-overflow").value;
  if (overflow !== "") args["x-overflow"] = stringField(overflow);
  const dlx = input("q-dlx").value.trim();
  if (dlx !== "") args["x-dead-letter-exchange"] = stringField(dlx);
  const dlrk = input("q-dlrk").value.trim();
  if (dlrk !== "") args["x-dead-letter-routing-key"] = stringField(dlrk);
  return args;
}

async function declare(): Promise<void> {
  clearError("queues-error");
  const type = Number(select("q-type").value) as QueueType;
  const btn = button("declare-btn");
  btn.disabled = true;
  try {
    const { response } = await gateway().declareQueue({
      name: input("q-name").value.trim(),
      durable: input("q-durable").checked,
      autoDelete: input("q-auto-delete").checked,
      type,
      arguments: declareArguments(),
    }, within(15000));
    trackQueue(response.name, typeName(type));
    log("ok", `declared queue ${response.name} (${response.messageCount} ready, ${response.consumerCount} consumers)`);
    toast("ok", `queue ${response.name} declared`);
  } catch (e) {
    reportError("queues-error", "DeclareQueue", e);
  } finally {
    btn.disabled = false;
  }
}

async function inspect(): Promise<void> {
  clearError("queues-error");
  const name = input("q-name").value.trim();
  if (name === "") {
    reportError("queues-error", "InspectQueue", new Error("enter the name of the queue to inspect"));
    return;
  }
  try {
    const { response } = await gateway().inspectQueue({ name }, within(10000));
    trackQueue(response.name);
    log("info", `queue ${name}: ${response.messageCount} ready, ${response.consumerCount} consumers`);
  } catch (e) {
    reportError("queues-error", "InspectQueue", e);
  }
}

async function purge(name: string): Promise<void> {
  clearError("queues-error");
  try {
    const { response } = await gateway().purgeQueue({ name }, within(15000));
    log("ok", `purged ${plural(response.messageCount, "message")} from ${name}`);
    toast("ok", `purged ${response.messageCount} from ${name}`);
  } catch (e) {
    reportError("queues-error", "PurgeQueue", e);
  }
  void refreshOne(name);
}

async function remove(name: string): Promise<void> {
  clearError("queues-error");
  try {
    const { response } = await gateway().deleteQueue(
      { name, ifUnused: false, ifEmpty: false }, within(15000));
    forget(name);
    if (response.existed === false) {
      log("ok", `queue ${name} did not exist`);
      toast("info", `queue ${name} did not exist`);
      return;
    }
    log("ok", `deleted queue ${name} (${plural(response.messageCount, "message")} with it)`);
    toast("ok", `queue ${name} deleted`);
  } catch (e) {
    reportError("queues-error", "DeleteQueue", e);
  }
}

export function initQueues(): void {
  byId("declare-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void declare();
  });
  button("track-btn").addEventListener("click", () => void inspect());
  save();
  renderRows();
  void refreshAll();
  window.setInterval(() => void refreshAll(), REFRESH_MS);
}
