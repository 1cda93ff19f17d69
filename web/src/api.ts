// The gateway client: grpc-web to amqpgw.v1.Gateway on the page's own
// origin (the daemon serves both), through @protobuf-ts's fetch transport.
import { GrpcWebFetchTransport } from "@protobuf-ts/grpcweb-transport";
import { RpcError, type RpcOptions } from "@protobuf-ts/runtime-rpc";
import { GatewayClient } from "./gen/amqpgw/v1/gateway.client";

export type WireFormat = "binary" | "text";

const SETTINGS_KEY = "amqpgw.settings";

interface Settings {
  format: WireFormat;
  token: string;
}

let settings: Settings = loadSettings();
let client = makeClient();

function loadSettings(): Settings {
  try {
    const s = JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? "{}");
    return {
      format: s.format === "text" ? "text" : "binary",
      token: typeof s.token === "string" ? s.token : "",
    };
  } catch {
    return { format: "binary", token: "" };
  }
}

function makeClient(): GatewayClient {
  const meta: Record<string, string> = {};
  if (settings.token !== "") meta["authorization"] = `Bearer ${settings.token}`;
  return new GatewayClient(new GrpcWebFetchTransport({
    baseUrl: location.origin,
    format: settings.format,
    meta,
  }));
}

export function gateway(): GatewayClient {
  return client;
}

export function currentSettings(): Settings {
  return { ...settings };
}

export function updateSettings(next: Partial<Settings>): void {
  settings = { ...settings, ...next };
  localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
  client = makeClient();
}

// Call options with a deadline (sent as grpc-timeout).
export function within(ms: number, extra: RpcOptions = {}): RpcOptions {
  return { timeout: ms, ...extra };
}

export interface CallError {
  code: string;
  message: string;
}

// grpc-message is percent-encoded on the wire; the transport hands it over
// as is.
function decodeGrpcMessage(m: string): string {
  try {
    return decodeURIComponent(m);
  } catch {
    return m;
  }
}

// fetch() itself failed (nothing answered: the gateway is down or the
// network is gone). The transport reports that as INTERNAL with the
// browser's text ("Failed to fetch" in Chromium, "NetworkError when
// attempting to fetch resource." in Firefox, "Load failed" in Safari).
const NETWORK_FAILURE = /^(Failed to fetch|NetworkError|Load failed|network error)/i;

export function describeError(e: unknown): CallError {
  if (e instanceof RpcError) {
    const message = decodeGrpcMessage(e.message);
    if (e.code === "INTERNAL" && NETWORK_FAILURE.test(message)) {
      return { code: "UNAVAILABLE", message: `the gateway does not answer (${message})` };
    }
    return { code: e.code, message };
  }
  if (e instanceof TypeError && NETWORK_FAILURE.test(e.message)) {
    return { code: "UNAVAILABLE", message: `the gateway does not answer (${e.message})` };
  }
  if (e instanceof Error) return { code: "UNKNOWN", message: e.message };
  return { code: "UNKNOWN", message: String(e) };
}

export const CODE_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
  "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
  "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
];

export function codeName(code: number): string {
  return CODE_NAMES[code] ?? `code ${code}`;
}
