// Rendering values for people, and building FieldValues from form input.
import type { Duration } from "./gen/google/protobuf/duration";
import type { Timestamp } from "./gen/google/protobuf/timestamp";
import {
  DeliveryMode, type FieldValue, type MessageProperties,
} from "./gen/amqpgw/v1/gateway";

// "1 message", "2 messages", "3 deliveries" (with `plural`): every count
// shown with a noun.
export function plural(n: number | bigint | string, singular: string,
  pluralForm = `${singular}s`): string {
  return `${n} ${String(n) === "1" ? singular : pluralForm}`;
}

export function timestampToDate(t: Timestamp | undefined): Date | undefined {
  if (t === undefined) return undefined;
  return new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6));
}

export function formatTimestamp(t: Timestamp | undefined): string {
  const d = timestampToDate(t);
  if (d === undefined || d.getTime() === 0) return "—";
  return d.toLocaleString();
}

export function durationMs(d: Duration | undefined): number | undefined {
  if (d === undefined) return undefined;
  return Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6);
}

export function msToDuration(ms: number): Duration {
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
}

export function formatField(v: FieldValue | undefined): string {
  if (v === undefined) return "";
  const k = v.kind;
  switch (k.oneofKind) {
    case "boolValue": return String(k.boolValue);
    case "intValue": return k.intValue;
    case "doubleValue": return String(k.doubleValue);
    case "stringValue": return JSON.stringify(k.stringValue);
    case "bytesValue": return `bytes(${k.bytesValue.length}) ${hex(k.bytesValue, 32)}`;
    case "timestampValue": return formatTimestamp(k.timestampValue);
    case "tableValue":
      return `{${Object.entries(k.tableValue.fields)
        .map(([key, val]) => `${key}: ${formatField(val)}`).join(", ")}}`;
    case "arrayValue": return `[${k.arrayValue.values.map(formatField).join(", ")}]`;
    case "decimalValue":
      return String(k.decimalValue.value / 10 ** k.decimalValue.scale);
    case "nullValue": return "null";
    default: return "";
  }
}

export type HeaderType = "string" | "int" | "double" | "bool";

// A header or argument from a form field. Throws with a readable message.
export function toField(type: HeaderType, raw: string): FieldValue {
  switch (type) {
    case "int":
      if (!/^-?\d+$/.test(raw.trim())) throw new Error(`"${raw}" is not an integer`);
      return { kind: { oneofKind: "intValue", intValue: raw.trim() } };
    case "double": {
      const n = Number(raw);
      if (raw.trim() === "" || !Number.isFinite(n)) throw new Error(`"${raw}" is not a number`);
      return { kind: { oneofKind: "doubleValue", doubleValue: n } };
    }
    case "bool":
      return { kind: { oneofKind: "boolValue", boolValue: /^(true|1|yes)$/i.test(raw.trim()) } };
    default:
      return { kind: { oneofKind: "stringValue", stringValue: raw } };
  }
}

export function intField(n: number): FieldValue {
  return { kind: { oneofKind: "intValue", intValue: String(Math.trunc(n)) } };
}

export function stringField(s: string): FieldValue {
  return { kind: { oneofKind: "stringValue", stringValue: s } };
}

export function hex(bytes: Uint8Array, max: number): string {
  const part = Array.from(bytes.subarray(0, max), (b) => b.toString(16).padStart(2, "0"));
  return part.join(" ") + (bytes.length > max ? " …" : "");
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

// The body as text when it is UTF-8, else a hex dump; long ones cut.
export function formatBody(body: Uint8Array): { text: string; binary: boolean } {
  const MAX = 4000;
  try {
    const s = utf8.decode(body);
    return { text: s.length > MAX ? `${s.slice(0, MAX)}… (${body.length} bytes)` : s, binary: false };
  } catch {
    return { text: `binary, ${body.length} bytes: ${hex(body, 256)}`, binary: true };
  }
}

// The properties that are set, as [name, value] rows; headers last.
export function propertyRows(p: MessageProperties | undefined): [string, string][] {
  if (p === undefined) return [];
  const rows: [string, string][] = [];
  const add = (k: string, v: string | undefined) => {
    if (v !== undefined && v !== "") rows.push([k, v]);
  };
  add("content-type", p.contentType);
  add("content-encoding", p.contentEncoding);
  add("delivery-mode", p.deliveryMode === DeliveryMode.TRANSIENT ? "transient"
    : p.deliveryMode === DeliveryMode.PERSISTENT ? "persistent" : undefined);
  add("priority", p.priority === undefined ? undefined : String(p.priority));
  add("correlation-id", p.correlationId);
  add("reply-to", p.replyTo);
  const exp = durationMs(p.expiration);
  add("expiration", exp === undefined ? undefined : `${exp} ms`);
  add("message-id", p.messageId);
  add("timestamp", p.timestamp === undefined ? undefined : formatTimestamp(p.timestamp));
  add("type", p.type);
  add("user-id", p.userId);
  add("app-id", p.appId);
  for (const [k, v] of Object.entries(p.headers).sort(([a], [b]) => a.localeCompare(b))) {
    rows.push([`header ${k}`, formatField(v)]);
  }
  return rows;
}
