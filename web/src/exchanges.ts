// The Exchanges page: every exchange of the vhost (ListExchanges), filtered
// by prefix or regex and refreshed every 2 s; a click shows the exchange's
// bindings (ListBindings), each with Unbind. Forms to declare an exchange
// (DeclareExchange) and to bind a queue (BindQueue, arguments as JSON).
import { describeError, gateway, within } from "./api";
import { button, byId, confirmButton, h, input, select } from "./dom";
import { formatField, jsonField } from "./format";
import { Freshness } from "./fresh";
import {
  type BindingInfo, BindingInfo_DestinationType, type ExchangeInfo, ExchangeType, type FieldValue,
  type ListExchangesRequest,
} from "./gen/amqpgw/v1/gateway";
import { clearError, log, reportError, toast } from "./log";
import { formatRate } from "./queues";
import { exchangeHref, navigate, queueHref, registerView } from "./router";

const REFRESH_MS = 2000;

let active = false;
let selected: string | undefined;
let timer: number | undefined;
let inFlight = false;
let generation = 0;
let fresh: Freshness;

export function exchangeTypeName(x: ExchangeInfo): string {
  if (x.customType !== "") return x.customType;
  return ExchangeType[x.type]?.toLowerCase() ?? "—";
}

function displayName(name: string): string {
  return name === "" ? "(default)" : name;
}

function renderExchanges(list: ExchangeInfo[]): void {
  byId("exchange-table").querySelector("tbody")!.replaceChildren(...list.map((x) => {
    const href = exchangeHref(x.name);
    const flags = [x.durable ? "durable" : "", x.autoDelete ? "auto-delete" : "", x.internal ? "internal" : ""]
      .filter(Boolean).join(", ");
    return h("tr", { "data-exchange": x.name, "aria-selected": x.name === selected ? "true" : undefined,
                     onclick: (ev: Event) => {
                       if ((ev.target as HTMLElement).closest("a") === null) navigate(href);
                     } },
      h("td", { class: "name" }, h("a", { href }, displayName(x.name))),
      h("td", { "data-col": "type" }, exchangeTypeName(x)),
      h("td", { "data-col": "flags", class: "small" }, flags || "—"),
      h("td", { class: "num", "data-col": "in" }, formatRate(x.publishInRate)),
      h("td", { class: "num", "data-col": "out" }, formatRate(x.publishOutRate)),
      h("td", { "data-col": "policy", class: "small" }, x.policy || "—"));
  }));
}

function filterRequest(): ListExchangesRequest["filter"] {
  const text = input("xf-text").value;
  if (text === "") return undefined;
  return select("xf-kind").value === "regex"
    ? { kind: { oneofKind: "regex", regex: text } }
    : { kind: { oneofKind: "prefix", prefix: text } };
}

function renderBindings(list: BindingInfo[]): void {
  byId("xb-table").querySelector("tbody")!.replaceChildren(...list.map((b) => {
    const toQueue = b.destinationType !== BindingInfo_DestinationType.EXCHANGE;
    const args: Record<string, FieldValue> = b.arguments;
    const argText = Object.entries(args).map(([k, v]) => `${k}=${formatField(v)}`).join(", ");
    return h("tr", { "data-destination": b.destination, "data-routing-key": b.routingKey },
      h("td", {}, toQueue ? h("a", { href: queueHref(b.destination) }, b.destination)
                          : `exchange ${b.destination}`),
      h("td", { class: "mono" }, b.routingKey),
      h("td", { class: "mono small" }, argText || "—"),
      h("td", { class: "ops" }, toQueue && b.exchange !== ""
        ? confirmButton("Unbind", "Unbind?", () => void unbind(b), "Remove this binding") : null));
  }));
  byId("xb-empty").hidden = list.length > 0;
}

async function refresh(): Promise<void> {
  if (inFlight) return;
  inFlight = true;
  const gen = generation;
  const sel = selected;
  try {
    const [xs, bs] = await Promise.allSettled([
      gateway().listExchanges({ filter: filterRequest(), pageSize: 500, pageToken: "" }, within(8000)),
      sel === undefined ? Promise.resolve(undefined)
        : gateway().listBindings({ of: { oneofKind: "exchange", exchange: sel } }, within(8000)),
    ]);
    if (gen !== generation) return;
    if (xs.status === "fulfilled") {
      renderExchanges(xs.value.response.exchanges);
      const n = xs.value.response.exchanges.length;
      byId("exchanges-count").textContent = `${n} ${n === 1 ? "exchange" : "exchanges"}` +
        (Number(xs.value.response.filteredCount) > n ? ` of ${xs.value.response.filteredCount}` : "");
      clearError("exchanges-error");
      fresh.ok();
    } else {
      fresh.fail(describeError(xs.reason));
      reportError("exchanges-error", "ListExchanges", xs.reason, !byId("exchanges-error").hidden);
    }
    if (bs.status === "fulfilled" && bs.value !== undefined) {
      renderBindings(bs.value.response.bindings);
      clearError("xb-error");
    } else if (bs.status === "rejected") {
      reportError("xb-error", "ListBindings", bs.reason, !byId("xb-error").hidden);
    }
  } finally {
    inFlight = false;
  }
}

function schedule(): void {
  window.clearTimeout(timer);
  if (!active) return;
  timer = window.setTimeout(async () => {
    if (document.visibilityState !== "hidden") await refresh();
    schedule();
  }, REFRESH_MS);
}

function restart(): void {
  generation++;
  inFlight = false;
  void refresh();
  schedule();
}

function select_(name: string | undefined): void {
  selected = name;
  byId("xb-card").hidden = name === undefined;
  byId("xb-name").textContent = name === undefined ? "" : displayName(name);
  byId("xb-table").querySelector("tbody")!.replaceChildren();
  byId("xb-empty").hidden = true;
  clearError("xb-error");
  if (name !== undefined) input("b-exchange").value = name;
}

async function declareExchange(): Promise<void> {
  clearError("xd-error");
  const name = input("x-name").value.trim();
  const btn = button("x-declare-btn");
  btn.disabled = true;
  try {
    await gateway().declareExchange({
      name,
      type: Number(select("x-type").value) as ExchangeType,
      durable: input("x-durable").checked,
      autoDelete: input("x-auto-delete").checked,
      internal: input("x-internal").checked,
      arguments: {},
      customType: "",
    }, within(15000));
    log("ok", `declared exchange ${name}`);
    toast("ok", `exchange ${name} declared`);
    byId("xd-result").textContent = `declared ${name}`;
    navigate(exchangeHref(name));
    restart();
  } catch (e) {
    byId("xd-result").textContent = "";
    reportError("xd-error", "DeclareExchange", e);
  } finally {
    btn.disabled = false;
  }
}

function bindArguments(): Record<string, FieldValue> {
  const raw = input("b-args").value.trim();
  if (raw === "") return {};
  const f = jsonField(raw);
  if (f.kind.oneofKind !== "tableValue") throw new Error("arguments: a JSON object, e.g. {\"x-match\": \"any\"}");
  return f.kind.tableValue.fields;
}

async function bind(): Promise<void> {
  clearError("bind-error");
  const queue = input("b-queue").value.trim();
  const exchange = input("b-exchange").value.trim();
  const routingKey = input("b-routing-key").value;
  const btn = button("bind-btn");
  btn.disabled = true;
  try {
    const args = bindArguments();
    await gateway().bindQueue({ queue, exchange, routingKey, arguments: args }, within(15000));
    log("ok", `bound ${queue} to ${exchange} with key "${routingKey}"`);
    toast("ok", `${queue} bound to ${exchange}`);
    byId("bind-result").textContent = `bound ${queue} to ${exchange} (key "${routingKey}")`;
    if (selected !== exchange) navigate(exchangeHref(exchange));
    else restart();
  } catch (e) {
    byId("bind-result").textContent = "";
    reportError("bind-error", "BindQueue", e);
  } finally {
    btn.disabled = false;
  }
}

async function unbind(b: BindingInfo): Promise<void> {
  clearError("xb-error");
  try {
    await gateway().unbindQueue(
      { queue: b.destination, exchange: b.exchange, routingKey: b.routingKey, arguments: b.arguments }, within(15000));
    log("ok", `unbound ${b.destination} from ${b.exchange} (key "${b.routingKey}")`);
    toast("ok", `${b.destination} unbound`);
  } catch (e) {
    reportError("xb-error", "UnbindQueue", e);
  }
  restart();
}

export function initExchanges(): void {
  fresh = new Freshness(byId("exchanges-fresh"), byId("view-exchanges"));
  byId("exchange-filter").addEventListener("submit", (ev) => ev.preventDefault());
  let debounce: number | undefined;
  input("xf-text").addEventListener("input", () => {
    window.clearTimeout(debounce);
    debounce = window.setTimeout(() => { fresh.reset(); restart(); }, 250);
  });
  select("xf-kind").addEventListener("change", () => { fresh.reset(); restart(); });
  byId("xd-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void declareExchange();
  });
  byId("bind-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void bind();
  });
  registerView("exchanges", {
    enter: (r) => {
      active = true;
      select_(r.name);
      restart();
    },
    leave: () => {
      active = false;
      window.clearTimeout(timer);
    },
  });
}
