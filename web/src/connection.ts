// The Connection section: the broker session's state (polled with
// GetStatus), Connect and Disconnect, counters, and the page's settings.
import { currentSettings, describeError, gateway, updateSettings, within, type WireFormat } from "./api";
import { button, byId, h, input, select } from "./dom";
import { durationMs, formatTimestamp, msToDuration } from "./format";
import { Freshness } from "./fresh";
import {
  type ConnectionInfo, ConnectionInfo_State, type Counters, type GetStatusResponse,
  ListingStatus_State, type MessageRates,
} from "./gen/amqpgw/v1/gateway";
import { clearError, log, reportError, toast } from "./log";

const POLL_MS = 2000;

let polling = false;
let reachable: boolean | undefined;
let lastState = "";
let fresh: Freshness;

export function stateName(s: ConnectionInfo_State): string {
  return ConnectionInfo_State[s] ?? "STATE_UNSPECIFIED";
}

function setBadge(state: string, text: string): void {
  const badge = byId("state-badge");
  badge.dataset.state = state;
  badge.textContent = text;
}

function renderConnection(c: ConnectionInfo | undefined): void {
  if (c === undefined) return;
  const state = stateName(c.state);
  setBadge(state, c.broker !== "" ? `${state} · ${c.broker}` : state);
  byId("conn-state").textContent =
    state + (c.blocked ? ` (publishing blocked: ${c.blockedReason || "alarm"})` : "");
  const others = c.brokers.filter((b) => b !== c.broker);
  byId("conn-broker").textContent = c.broker === "" ? "—"
    : `${c.broker} vhost ${c.vhost || "/"}` + (others.length ? ` (failover: ${others.join(", ")})` : "");
  const hb = durationMs(c.heartbeat);
  byId("conn-server").textContent = c.serverProduct === "" ? "—"
    : `${c.serverProduct} ${c.serverVersion}` + (c.clusterName ? ` · cluster ${c.clusterName}` : "") +
      (hb ? ` · heartbeat ${hb / 1000} s` : "");
  byId("conn-since").textContent =
    c.state === ConnectionInfo_State.READY ? formatTimestamp(c.connectedSince) : "—";
  byId("conn-reconnects").textContent = c.reconnects;
  byId("conn-last-error").textContent = c.lastError || "—";
  button("connect-btn").disabled = c.state === ConnectionInfo_State.READY;
  button("disconnect-btn").disabled = c.state === ConnectionInfo_State.DISCONNECTED;
  if (state !== lastState) {
    if (lastState !== "") log(c.state === ConnectionInfo_State.READY ? "ok" : "info", `broker session: ${state}`);
    lastState = state;
  }
}

function renderCounters(c: Counters | undefined): void {
  if (c === undefined) return;
  const items: [string, string][] = [
    ["published", c.published], ["confirmed", c.confirmed], ["nacked", c.nacked],
    ["returned", c.returned], ["delivered", c.delivered], ["acked", c.acked],
    ["requeued", c.requeued], ["rejected", c.rejected],
    ["open streams", c.activeStreams], ["unconfirmed", c.unconfirmed],
  ];
  byId("counters").replaceChildren(...items.map(([k, n]) =>
    h("div", { class: "counter", "data-counter": k }, h("div", { class: "n" }, n), h("div", { class: "k" }, k))));
}

function formatRates(r: MessageRates | undefined): string {
  if (r === undefined) return "—";
  const f = (n: number) => (n < 10 ? n.toFixed(1) : Math.round(n).toString());
  return `${f(r.published)} published · ${f(r.confirmed)} confirmed · ${f(r.delivered)} delivered · ` +
    `${f(r.acked)} acked per second`;
}

function render(r: GetStatusResponse): void {
  renderConnection(r.connection);
  renderCounters(r.counters);
  byId("conn-rates").textContent = formatRates(r.rates10S);
  const l = r.listing;
  byId("conn-listing").textContent = l === undefined ? "—"
    : l.state === ListingStatus_State.AVAILABLE ? `available (${l.url})`
    : l.state === ListingStatus_State.UNAVAILABLE ? `unavailable: ${l.detail}`
    : "not asked yet";
  byId("gw-version").textContent = `v${r.version}`;
  byId("conn-gateway").textContent = `amqpgwd ${r.version} · ${r.instanceId}`;
}

export async function refreshStatus(): Promise<void> {
  try {
    const { response } = await gateway().getStatus({}, within(5000));
    render(response);
    if (reachable === false) log("ok", "the gateway answers again");
    reachable = true;
    clearError("connection-error");
    fresh.ok();
  } catch (e) {
    // Nothing known about the session now: say so, never the last state.
    const err = describeError(e);
    setBadge("unreachable", `${err.code} · gateway unreachable`);
    byId("conn-state").textContent =
      `${err.code}: no answer from the gateway; the broker session's state is unknown`;
    fresh.fail(err);
    reportError("connection-error", "GetStatus", e, reachable === false);
    if (reachable !== false) lastState = "";
    reachable = false;
  }
}

async function poll(): Promise<void> {
  if (polling) return;
  polling = true;
  try {
    await refreshStatus();
  } finally {
    polling = false;
    window.setTimeout(poll, POLL_MS);
  }
}

export function initConnection(): void {
  fresh = new Freshness(byId("connection-fresh"), byId("connection"));
  const connect = button("connect-btn");
  const disconnect = button("disconnect-btn");
  connect.addEventListener("click", async () => {
    connect.disabled = true;
    clearError("connection-error");
    log("info", "Connect: waiting up to 15 s for the broker");
    try {
      const { response } = await gateway().connect({ wait: msToDuration(15000) }, within(20000));
      renderConnection(response.connection);
      const state = stateName(response.connection?.state ?? 0);
      if (state === "READY") toast("ok", "connected");
      else toast("info", `still ${state}: ${response.connection?.lastError ?? ""}`);
    } catch (e) {
      reportError("connection-error", "Connect", e);
    } finally {
      void refreshStatus();
    }
  });
  disconnect.addEventListener("click", async () => {
    disconnect.disabled = true;
    clearError("connection-error");
    try {
      const { response } = await gateway().disconnect({}, within(20000));
      renderConnection(response.connection);
      toast("info", "disconnected from the broker");
    } catch (e) {
      reportError("connection-error", "Disconnect", e);
    } finally {
      void refreshStatus();
    }
  });

  byId("settings-form").addEventListener("submit", (ev) => ev.preventDefault());
  const format = select("wire-format");
  const token = input("token");
  const s = currentSettings();
  format.value = s.format;
  token.value = s.token;
  format.addEventListener("change", () => {
    updateSettings({ format: format.value as WireFormat });
    log("info", `calls now use ${format.value === "text" ? "application/grpc-web-text" : "application/grpc-web+proto"}`);
    void refreshStatus();
  });
  token.addEventListener("change", () => {
    updateSettings({ token: token.value.trim() });
    log("info", token.value.trim() ? "calls now carry the bearer token" : "calls carry no token");
  });
  void poll();
}
