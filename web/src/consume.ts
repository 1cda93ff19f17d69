// The Consume section: one StreamMessages stream at a time; messages shown
// newest first as they arrive, with properties and headers; in CLIENT mode
// Ack / Requeue / Reject per message and Ack all.
import { RpcError } from "@protobuf-ts/runtime-rpc";
import { gateway, within } from "./api";
import { button, byId, h, input, optionalNumber, select } from "./dom";
import { formatBody, msToDuration, plural, propertyRows } from "./format";
import {
  AckRequest_Action, type Delivery, StreamMessagesRequest_AckMode, type StreamMessagesResponse,
  StreamStatus_Kind,
} from "./gen/amqpgw/v1/gateway";
import { clearError, log, reportError } from "./log";
import { refreshQueue } from "./queue";

const MAX_SHOWN = 500;

interface Stream {
  abort: AbortController;
  queue: string;
  mode: StreamMessagesRequest_AckMode;
  subscriptionId: string;
  received: number;
  acked: number;
  // CLIENT mode: deliveries not yet acked, rejected or requeued.
  pending: Map<string, HTMLElement>;
  stopping: boolean;
}

let stream: Stream | undefined;

function setState(state: string, text: string): void {
  const pill = byId("consume-state");
  pill.dataset.state = state;
  pill.textContent = text;
}

function info(): void {
  if (stream === undefined) return;
  const mode = StreamMessagesRequest_AckMode[stream.mode];
  byId("consume-info").textContent =
    `${stream.queue} · ${mode} · ${stream.received} received` +
    (stream.mode === StreamMessagesRequest_AckMode.CLIENT
      ? ` · ${stream.pending.size} awaiting ack` : "") +
    (stream.subscriptionId ? ` · subscription ${stream.subscriptionId}` : "");
}

function settle(el: HTMLElement, state: string, label: string): void {
  el.dataset.state = state;
  const actions = el.querySelector(".msg-actions");
  actions?.replaceChildren(h("span", { class: "msg-state" }, label));
}

// The delay of the Retry button (AckRequest RETRY).
const RETRY_DELAY_MS = 10000;

async function ack(ids: string[], action: AckRequest_Action): Promise<void> {
  const s = stream;
  if (s === undefined || ids.length === 0) return;
  clearError("consume-error");
  const verb = action === AckRequest_Action.REQUEUE ? "requeued"
    : action === AckRequest_Action.REJECT ? "rejected"
    : action === AckRequest_Action.RETRY ? `retry in ${RETRY_DELAY_MS / 1000} s` : "acked";
  const retryDelay = action === AckRequest_Action.RETRY ? msToDuration(RETRY_DELAY_MS) : undefined;
  try {
    for (let i = 0; i < ids.length; i += 65535) {
      const chunk = ids.slice(i, i + 65535);
      const { response } = await gateway().ack(
        { subscriptionId: s.subscriptionId, deliveryIds: chunk, action, error: "", retryDelay },
        within(15000));
      const stale = new Set(response.staleIds);
      for (const id of chunk) {
        const el = s.pending.get(id);
        s.pending.delete(id);
        if (el === undefined) continue;
        if (stale.has(id)) settle(el, "stale", "stale: the broker redelivers it");
        else settle(el, action === AckRequest_Action.RETRY ? "retried" : verb, verb);
      }
      if (verb === "acked") s.acked += response.appliedCount;
    }
    if (ids.length > 1) log("ok", `${verb} ${plural(ids.length, "message")}`);
  } catch (e) {
    reportError("consume-error", "Ack", e);
  }
  info();
  refreshQueue(s.queue);
}

// One delivery as a list item; `client`: with Ack / Requeue / Reject
// buttons. A delivery id of 0 (GetMessages: nothing to ack) is not shown.
export function renderDelivery(d: Delivery, client: boolean): HTMLElement {
  const body = formatBody(d.body);
  const props = propertyRows(d.properties);
  const flags = [
    d.redelivered ? "redelivered" : "",
    d.deliveryAttempt > 1 ? `attempt ${d.deliveryAttempt}` : "",
  ].filter(Boolean).join(" · ");
  const id = d.deliveryId;
  const el = h("li", { class: "msg fresh", "data-delivery-id": id, "data-state": client ? "pending" : "received" },
    h("div", { class: "msg-head" },
      id !== "0" ? h("span", { class: "msg-id" }, `#${id}`) : null,
      h("span", { class: "msg-route" }, `${d.exchange || "(default)"} → ${d.routingKey}`),
      flags ? h("span", { class: "msg-flags" }, flags) : null,
      h("time", { class: "msg-time" }, new Date().toLocaleTimeString())),
    h("pre", { class: "msg-body" + (body.binary ? " binary" : "") }, body.text),
    props.length ? h("details", {},
      h("summary", {}, `properties and headers (${props.length})`),
      h("table", { class: "kv" }, ...props.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, v)))))
      : null,
    client ? h("div", { class: "msg-actions" },
      h("button", { type: "button", class: "small-btn", onclick: () => void ack([id], AckRequest_Action.ACK) }, "Ack"),
      h("button", { type: "button", class: "small-btn", onclick: () => void ack([id], AckRequest_Action.REQUEUE) }, "Requeue"),
      h("button", { type: "button", class: "small-btn", title: `Back in the queue after ${RETRY_DELAY_MS / 1000} s (a delay queue), as attempt ${d.deliveryAttempt + 1}`, onclick: () => void ack([id], AckRequest_Action.RETRY) }, "Retry"),
      h("button", { type: "button", class: "small-btn danger", onclick: () => void ack([id], AckRequest_Action.REJECT) }, "Reject"))
      : null);
  window.setTimeout(() => el.classList.remove("fresh"), 1300);
  return el;
}

// Adds deliveries to the list, newest first; keeps the last MAX_SHOWN.
function show(s: Stream, deliveries: Delivery[]): void {
  const client = s.mode === StreamMessagesRequest_AckMode.CLIENT;
  const list = byId("messages");
  for (const d of deliveries) {
    s.received++;
    const el = renderDelivery(d, client);
    if (client) s.pending.set(d.deliveryId, el);
    list.prepend(el);
  }
  while (list.children.length > MAX_SHOWN) list.lastElementChild?.remove();
  byId("messages-empty").hidden = true;
}

function onEvent(s: Stream, ev: StreamMessagesResponse): void {
  const e = ev.event;
  switch (e.oneofKind) {
    case "subscribed":
      s.subscriptionId = e.subscribed.subscriptionId;
      setState("streaming", "streaming");
      log("ok", `consuming ${e.subscribed.queue} (consumer ${e.subscribed.consumerTag}, prefetch ${e.subscribed.prefetch})`);
      break;
    case "delivery":
      show(s, [e.delivery]);
      break;
    case "batch":
      show(s, e.batch.deliveries);
      break;
    case "status":
      if (e.status.kind === StreamStatus_Kind.RECONNECTING) {
        setState("paused", "reconnecting");
        for (const el of s.pending.values()) settle(el, "stale", "stale: the broker redelivers it");
        s.pending.clear();
      } else {
        setState("streaming", "streaming");
      }
      log("info", `stream: ${e.status.message}`);
      break;
    default:
      return;  // an empty message: the gateway's keep-alive
  }
  info();
}

async function start(): Promise<void> {
  clearError("consume-error");
  const queue = input("c-queue").value.trim();
  if (queue === "") {
    reportError("consume-error", "StreamMessages", new Error("enter the queue to consume from"));
    return;
  }
  if (stream !== undefined) stop();
  const mode = Number(select("c-ack-mode").value) as StreamMessagesRequest_AckMode;
  const s: Stream = {
    abort: new AbortController(), queue, mode, subscriptionId: "", received: 0, acked: 0,
    pending: new Map(), stopping: false,
  };
  stream = s;
  button("consume-start").disabled = true;
  button("consume-stop").disabled = false;
  button("ack-all").hidden = mode !== StreamMessagesRequest_AckMode.CLIENT;
  setState("starting", "starting");
  info();
  const call = gateway().streamMessages({
    queue,
    prefetch: Math.floor(optionalNumber("c-prefetch") ?? 0),
    ackMode: mode,
    maxMessages: String(Math.max(0, Math.floor(optionalNumber("c-max") ?? 0))),
    consumerTag: "",
    exclusive: false,
    arguments: {},
    // Deliveries that wait together come in one response (fewer grpc-web
    // frames for a busy queue); shown one by one all the same.
    maxBatch: 100,
    // 0: the gateway's default byte budget (64 MiB).
    maxOutstandingBytes: "0",
  }, { abort: s.abort.signal });
  try {
    for await (const ev of call.responses) onEvent(s, ev);
    setState("stopped", "ended");
    log("ok", `stream on ${queue} ended after ${plural(s.received, "message")}`);
  } catch (e) {
    if (s.stopping || (e instanceof RpcError && e.code === "CANCELLED" && s.abort.signal.aborted)) {
      setState("stopped", "stopped");
      log("info", `stopped consuming ${queue} (${s.received} received)`);
    } else {
      setState("failed", "failed");
      reportError("consume-error", "StreamMessages", e);
    }
  } finally {
    // Unacked deliveries go back to the queue with the stream.
    for (const el of s.pending.values()) settle(el, "requeued", "returned to the queue (stream ended)");
    s.pending.clear();
    if (stream === s) {
      stream = undefined;
      button("consume-start").disabled = false;
      button("consume-stop").disabled = true;
      button("ack-all").hidden = true;
    }
    refreshQueue(queue);
  }
}

function stop(): void {
  if (stream === undefined) return;
  stream.stopping = true;
  stream.abort.abort();
}

// The queue page opened `queue`: consume from it next (a running stream
// goes on; its queue is named in the card).
export function consumeFrom(queue: string): void {
  if (stream === undefined) input("c-queue").value = queue;
}

export function initConsume(): void {
  byId("consume-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void start();
  });
  button("consume-stop").addEventListener("click", stop);
  button("ack-all").addEventListener("click", () => {
    if (stream !== undefined) void ack([...stream.pending.keys()], AckRequest_Action.ACK);
  });
  button("clear-messages").addEventListener("click", () => {
    byId("messages").replaceChildren();
    byId("messages-empty").hidden = false;
  });
  window.addEventListener("pagehide", stop);
}
