// The Publish section: one message (Publish) or a batch of N (PublishBatch
// in chunks, with progress and each failed message listed). "{i}" in the
// body, message id or correlation id becomes the message's number.
import { codeName, describeError, gateway, within } from "./api";
import { button, byId, h, input, optionalNumber, select } from "./dom";
import { HEADER_HINTS, HEADER_TYPES, type HeaderType, msToDuration, toField } from "./format";
import {
  DeliveryMode, type FieldValue, type MessageProperties, type PublishRequest,
} from "./gen/amqpgw/v1/gateway";
import { clearError, log, reportError, toast } from "./log";
import { refreshQueue } from "./queue";

const CHUNK = 500;
const MAX_FAILURES_SHOWN = 200;

let running: AbortController | undefined;

// A header row: name, type (the CLI's KEY:TYPE=VALUE types), value.
function addHeaderRow(key = "", type: HeaderType = "string", value = ""): void {
  const valueInput = h("input", { placeholder: HEADER_HINTS[type], value, "aria-label": "header value",
                                  "data-h": "value", spellcheck: "false" });
  const typeSelect = h("select", { "aria-label": "header type", "data-h": "type" },
    ...HEADER_TYPES.map((t) => h("option", { value: t, selected: t === type }, t)));
  typeSelect.addEventListener("change", () => {
    const t = typeSelect.value as HeaderType;
    valueInput.placeholder = HEADER_HINTS[t];
    valueInput.disabled = t === "null";
    if (t === "null") valueInput.value = "";
  });
  const row = h("div", { class: "header-row" },
    h("input", { placeholder: "header", value: key, "aria-label": "header name", "data-h": "key", spellcheck: "false" }),
    typeSelect, valueInput,
    h("button", { type: "button", class: "small-btn", "aria-label": "remove header",
                  onclick: () => row.remove() }, "×"));
  byId("p-headers").append(row);
}

function headers(): Record<string, FieldValue> {
  const out: Record<string, FieldValue> = {};
  for (const row of byId("p-headers").querySelectorAll(".header-row")) {
    const key = (row.querySelector("[data-h=key]") as HTMLInputElement).value.trim();
    if (key === "") continue;
    const type = (row.querySelector("[data-h=type]") as HTMLSelectElement).value as HeaderType;
    const value = (row.querySelector("[data-h=value]") as HTMLInputElement).value;
    try {
      out[key] = toField(type, value);
    } catch (e) {
      throw new Error(`header ${key}: ${e instanceof Error ? e.message : e}`);
    }
  }
  return out;
}

// Message i (1-based) from the form.
function messageMaker(): (i: number) => PublishRequest {
  const encoder = new TextEncoder();
  const exchange = input("p-exchange").value.trim();
  const routingKey = input("p-routing-key").value.trim();
  const body = byId<HTMLTextAreaElement>("p-body").value;
  const priority = optionalNumber("p-priority");
  const expiration = optionalNumber("p-expiration");
  const messageId = input("p-message-id").value.trim();
  const correlationId = input("p-correlation-id").value.trim();
  const hdrs = headers();
  const allowUnroutable = input("p-allow-unroutable").checked;
  const now = { seconds: String(Math.floor(Date.now() / 1000)), nanos: 0 };
  return (i: number) => {
    const n = String(i);
    const properties: MessageProperties = {
      contentType: input("p-content-type").value.trim() || "text/plain",
      contentEncoding: "",
      headers: hdrs,
      deliveryMode: Number(select("p-delivery-mode").value) as DeliveryMode,
      priority,
      correlationId: correlationId.split("{i}").join(n),
      replyTo: input("p-reply-to").value.trim(),
      expiration: expiration === undefined ? undefined : msToDuration(expiration),
      messageId: messageId.split("{i}").join(n),
      timestamp: now,
      type: input("p-type").value.trim(),
      userId: "",
      appId: input("p-app-id").value.trim(),
    };
    return {
      exchange, routingKey, properties, allowUnroutable,
      body: encoder.encode(body.split("{i}").join(n)),
    };
  };
}

function progress(done: number, total: number, ok: number, failed: number): void {
  byId("publish-progress").hidden = false;
  const bar = byId<HTMLProgressElement>("p-progress");
  bar.max = total;
  bar.value = done;
  byId("p-progress-text").textContent =
    `${done} / ${total} sent · ${ok} confirmed` + (failed ? ` · ${failed} failed` : "");
}

function addFailure(index: number, code: string, message: string, count: { shown: number }): void {
  if (count.shown >= MAX_FAILURES_SHOWN) return;
  count.shown++;
  byId("publish-failures").append(h("li", {}, `message ${index}: ${code}: ${message}`));
}

async function publish(): Promise<void> {
  clearError("publish-error");
  byId("publish-failures").replaceChildren();
  byId("publish-result").textContent = "";
  const total = Math.max(1, Math.floor(optionalNumber("p-count") ?? 1));
  let make: (i: number) => PublishRequest;
  try {
    make = messageMaker();
  } catch (e) {
    reportError("publish-error", "Publish", e);
    return;
  }
  const routingKey = input("p-routing-key").value.trim();
  const abort = new AbortController();
  running = abort;
  button("publish-btn").disabled = true;
  button("publish-cancel").hidden = total === 1;
  try {
    if (total === 1) {
      byId("publish-progress").hidden = true;
      const { response } = await gateway().publish(make(1), within(60000, { abort: abort.signal }));
      byId("publish-result").textContent =
        response.messageId
          ? `confirmed by the broker: message id ${response.messageId}`
          : "confirmed by the broker";
      log("ok", `published 1 message to ${routingKey || "(no key)"}`);
      toast("ok", "message confirmed");
      return;
    }
    let ok = 0;
    let failed = 0;
    const shown = { shown: 0 };
    progress(0, total, 0, 0);
    for (let start = 1; start <= total && !abort.signal.aborted; start += CHUNK) {
      const n = Math.min(CHUNK, total - start + 1);
      const messages = Array.from({ length: n }, (_, k) => make(start + k));
      try {
        const { response } = await gateway().publishBatch({ messages }, within(120000, { abort: abort.signal }));
        response.results.forEach((r, k) => {
          if (r.code === 0) return;
          failed++;
          addFailure(start + k, codeName(r.code), r.error, shown);
        });
        ok += response.okCount;
      } catch (e) {
        const err = describeError(e);
        failed += n;
        addFailure(start, err.code, `${err.message} (messages ${start}–${start + n - 1})`, shown);
        progress(start + n - 1, total, ok, failed);
        reportError("publish-error", "PublishBatch", e);
        break;
      }
      progress(start + n - 1, total, ok, failed);
    }
    if (failed > shown.shown) {
      byId("publish-failures").append(h("li", {}, `… and ${failed - shown.shown} more`));
    }
    const summary = `${ok} of ${total} confirmed` + (failed ? `, ${failed} failed` : "") +
      (abort.signal.aborted ? " (cancelled)" : "");
    byId("publish-result").textContent = summary;
    log(failed ? "error" : "ok", `batch to ${routingKey || "(no key)"}: ${summary}`);
    toast(failed ? "error" : "ok", summary);
  } catch (e) {
    reportError("publish-error", "Publish", e);
  } finally {
    running = undefined;
    button("publish-btn").disabled = false;
    button("publish-cancel").hidden = true;
    if (routingKey !== "") refreshQueue(routingKey);
  }
}

// The queue page opened `queue`: publish to it through the default
// exchange unless the form is busy.
export function publishTo(queue: string): void {
  if (running !== undefined) return;
  input("p-exchange").value = "";
  input("p-routing-key").value = queue;
}

export function initPublish(): void {
  byId("publish-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void publish();
  });
  button("publish-cancel").addEventListener("click", () => running?.abort());
  button("p-add-header").addEventListener("click", () => addHeaderRow());
  addHeaderRow("x-source", "string", "amqpgw-web");
}
