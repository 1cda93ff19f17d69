// The Queues page: every queue of the vhost from ListQueues (the
// management API), sortable, filtered by prefix or regex, refreshed every
// 2 s with its age shown; a click opens the queue's page. Declaring a queue
// and opening one by name (which works without the management API) sit
// under the table.
import { describeError, gateway, within } from "./api";
import { button, byId, h, input, optionalNumber, select } from "./dom";
import { Freshness } from "./fresh";
import { intField, stringField } from "./format";
import { type FieldValue, type ListQueuesRequest, type QueueInfo, QueueType } from "./gen/amqpgw/v1/gateway";
import { recordInfo } from "./history";
import { clearError, log, reportError, toast } from "./log";
import { navigate, queueHref, registerView } from "./router";

const REFRESH_MS = 2000;
const PAGE_SIZE = 500;

type SortKey = "name" | "type" | "ready" | "unacked" | "consumers" | "publish" | "deliver";

let queues: QueueInfo[] = [];
let sortKey: SortKey = "name";
let sortDesc = false;
let active = false;
let inFlight = false;
let timer: number | undefined;
let fresh: Freshness;
// Bumped when the filter changes: answers to older requests are dropped.
let generation = 0;

export function queueTypeName(t: QueueType): string {
  return t === QueueType.QUORUM ? "quorum" : t === QueueType.STREAM ? "stream"
    : t === QueueType.CLASSIC ? "classic" : "—";
}

export function formatRate(r: number | undefined): string {
  if (r === undefined) return "—";
  if (r === 0) return "0";
  return r < 10 ? r.toFixed(1) : Math.round(r).toLocaleString("en-US");
}

function sortValue(q: QueueInfo, k: SortKey): string | number {
  switch (k) {
    case "name": return q.name;
    case "type": return queueTypeName(q.type);
    case "ready": return Number(q.ready);
    case "unacked": return Number(q.unacked);
    case "consumers": return Number(q.consumers);
    case "publish": return q.rates?.publish ?? 0;
    case "deliver": return q.rates?.deliver ?? 0;
  }
}

function sorted(): QueueInfo[] {
  const out = [...queues];
  out.sort((a, b) => {
    const x = sortValue(a, sortKey);
    const y = sortValue(b, sortKey);
    const c = typeof x === "number" && typeof y === "number" ? x - y
      : String(x).localeCompare(String(y));
    return (sortDesc ? -c : c) || a.name.localeCompare(b.name);
  });
  return out;
}

function renderTable(): void {
  const body = byId("queue-table").querySelector("tbody")!;
  body.replaceChildren(...sorted().map((q) => {
    const href = queueHref(q.name);
    return h("tr", { "data-queue": q.name, "data-state": q.state || undefined, onclick: (ev: Event) => {
      if ((ev.target as HTMLElement).closest("a") === null) navigate(href);
    } },
      h("td", { class: "name" }, h("a", { href }, q.name),
        q.state && q.state !== "running" ? h("span", { class: "tag warn" }, q.state) : null),
      h("td", { "data-col": "type" }, queueTypeName(q.type)),
      h("td", { class: "num", "data-col": "ready" }, q.ready),
      h("td", { class: "num", "data-col": "unacked" }, q.unacked),
      h("td", { class: "num", "data-col": "consumers" }, q.consumers),
      h("td", { class: "num", "data-col": "publish" }, formatRate(q.rates?.publish)),
      h("td", { class: "num", "data-col": "deliver" }, formatRate(q.rates?.deliver)));
  }));
  for (const th of byId("queue-table").querySelectorAll<HTMLElement>("th[data-sort]")) {
    const on = th.dataset.sort === sortKey;
    th.setAttribute("aria-sort", on ? (sortDesc ? "descending" : "ascending") : "none");
  }
}

function filterRequest(): ListQueuesRequest["filter"] {
  const text = input("qf-text").value;
  if (text === "") return undefined;
  return select("qf-kind").value === "regex"
    ? { kind: { oneofKind: "regex", regex: text } }
    : { kind: { oneofKind: "prefix", prefix: text } };
}

export async function refreshQueues(): Promise<void> {
  if (inFlight) return;
  inFlight = true;
  const gen = generation;
  // The filter this answer is for (the box may change while it is on its
  // way); #queues[data-filter] says which filter the table shows.
  const filter = filterRequest();
  const filterText = filter === undefined ? "" : input("qf-text").value;
  try {
    const { response } = await gateway().listQueues(
      { filter, pageSize: PAGE_SIZE, pageToken: "" }, within(8000));
    if (gen !== generation) return;
    queues = response.queues;
    for (const q of queues) recordInfo(q);
    renderTable();
    byId("queue-names").replaceChildren(...queues.slice(0, 200).map((q) => h("option", { value: q.name })));
    const shown = queues.length;
    const filtered = Number(response.filteredCount);
    const total = Number(response.totalCount);
    byId("queues-count").textContent =
      (filtered > shown ? `the first ${shown} of ${filtered} queues` : `${shown} ${shown === 1 ? "queue" : "queues"}`) +
      (filter !== undefined ? ` matching (of ${total})` : "") +
      (filtered > shown ? " (narrow the filter to see the others)" : "");
    byId("queues-empty").hidden = shown > 0;
    byId("queues-unavailable").hidden = true;
    clearError("queues-list-error");
    byId("queues").dataset.filter = filterText;
    fresh.ok();
  } catch (e) {
    if (gen !== generation) return;
    const err = describeError(e);
    fresh.fail(err);
    if (err.code === "FAILED_PRECONDITION") {
      // No management API: say so with the server's words, nothing stale.
      queues = [];
      renderTable();
      byId("queues-count").textContent = "";
      byId("queues-empty").hidden = true;
      clearError("queues-list-error");
      const box = byId("queues-unavailable");
      box.replaceChildren(h("b", {}, "Listing is unavailable. "), err.message,
        h("br"), "Queues can still be opened by name below.");
      box.hidden = false;
    } else {
      byId("queues-unavailable").hidden = true;
      const wasShown = !byId("queues-list-error").hidden;
      reportError("queues-list-error", "ListQueues", e, wasShown);
    }
  } finally {
    inFlight = false;
  }
}

function schedule(): void {
  window.clearTimeout(timer);
  if (!active) return;
  timer = window.setTimeout(async () => {
    if (document.visibilityState !== "hidden") await refreshQueues();
    schedule();
  }, REFRESH_MS);
}

function filterChanged(): void {
  generation++;
  inFlight = false;
  fresh.reset();
  void refreshQueues();
  schedule();
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
    log("ok", `declared queue ${response.name} (${response.messageCount} ready, ${response.consumerCount} consumers)`);
    toast("ok", `queue ${response.name} declared`);
    void refreshQueues();
  } catch (e) {
    reportError("queues-error", "DeclareQueue", e);
  } finally {
    btn.disabled = false;
  }
}

function open(): void {
  clearError("queues-error");
  const name = input("q-name").value.trim();
  if (name === "") {
    reportError("queues-error", "Open", new Error("enter the name of the queue to open"));
    return;
  }
  navigate(queueHref(name));
}

export function initQueues(): void {
  fresh = new Freshness(byId("queues-fresh"), byId("queues"));
  byId("declare-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void declare();
  });
  button("open-btn").addEventListener("click", open);
  byId("queue-filter").addEventListener("submit", (ev) => ev.preventDefault());
  let debounce: number | undefined;
  input("qf-text").addEventListener("input", () => {
    window.clearTimeout(debounce);
    debounce = window.setTimeout(filterChanged, 250);
  });
  select("qf-kind").addEventListener("change", filterChanged);
  for (const th of byId("queue-table").querySelectorAll<HTMLElement>("th[data-sort]")) {
    const key = th.dataset.sort as SortKey;
    const act = () => {
      if (sortKey === key) sortDesc = !sortDesc;
      else {
        sortKey = key;
        sortDesc = key !== "name" && key !== "type";  // numbers: largest first
      }
      renderTable();
    };
    th.tabIndex = 0;
    th.addEventListener("click", act);
    th.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        act();
      }
    });
  }
  registerView("queues", {
    enter: () => {
      active = true;
      void refreshQueues();
      schedule();
    },
    leave: () => {
      active = false;
      window.clearTimeout(timer);
    },
  });
}
