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

// The header and argument types of the CLI (client/values.cc), with its
// spelling and semantics: KEY:TYPE=VALUE there, a type menu here.
export const HEADER_TYPES = [
  "string", "int", "float", "bool", "bytes", "timestamp", "json", "decimal", "null",
] as const;
export type HeaderType = typeof HEADER_TYPES[number];

// What each type takes, shown as the value's placeholder.
export const HEADER_HINTS: Record<HeaderType, string> = {
  string: "text",
  int: "64-bit integer",
  float: "number",
  bool: "true or false",
  bytes: "base64",
  timestamp: "RFC 3339 or Unix seconds",
  json: '{"a": [1, 2]}',
  decimal: "12.34",
  null: "(no value)",
};

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const MAX_JSON_DEPTH = 16;

function quoted(raw: string): string {
  return JSON.stringify(raw.length > 40 ? `${raw.slice(0, 40)}…` : raw);
}

// absl::SimpleAtob's words.
const TRUE_WORDS = /^(true|t|yes|y|1)$/i;
const FALSE_WORDS = /^(false|f|no|n|0)$/i;

function parseBase64(raw: string): Uint8Array {
  const s = raw.trim();
  // Standard or URL-safe alphabet, padding optional (as the CLI).
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(s) || s.replace(/=+$/, "").length % 4 === 1) {
    throw new Error(`${quoted(raw)} is not base64`);
  }
  let std = s.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  while (std.length % 4 !== 0) std += "=";
  const bin = atob(std);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function parseTimestamp(raw: string): FieldValue {
  const s = raw.trim();
  let seconds: number;
  if (/^-?\d+$/.test(s)) {
    seconds = Number(s);
  } else if (RFC3339.test(s) && Number.isFinite(Date.parse(s))) {
    seconds = Math.floor(Date.parse(s) / 1000);
  } else {
    throw new Error(`${quoted(raw)} is not a timestamp (RFC 3339 or Unix seconds)`);
  }
  return { kind: { oneofKind: "timestampValue", timestampValue: { seconds: String(seconds), nanos: 0 } } };
}

// A JSON value as the CLI maps it: objects become tables, arrays arrays,
// integral numbers int, other numbers float, null null.
function fromJson(v: unknown, depth: number): FieldValue {
  if (depth > MAX_JSON_DEPTH) throw new Error(`nested deeper than ${MAX_JSON_DEPTH} levels`);
  if (v === null) return { kind: { oneofKind: "nullValue", nullValue: 0 } };
  if (typeof v === "boolean") return { kind: { oneofKind: "boolValue", boolValue: v } };
  if (typeof v === "string") return stringField(v);
  if (typeof v === "number") {
    if (Number.isInteger(v) && Math.abs(v) <= 2 ** 53) return { kind: { oneofKind: "intValue", intValue: String(v) } };
    return { kind: { oneofKind: "doubleValue", doubleValue: v } };
  }
  if (Array.isArray(v)) {
    return { kind: { oneofKind: "arrayValue", arrayValue: { values: v.map((x) => fromJson(x, depth + 1)) } } };
  }
  const fields: Record<string, FieldValue> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) fields[k] = fromJson(x, depth + 1);
  return { kind: { oneofKind: "tableValue", tableValue: { fields } } };
}

export function jsonField(raw: string): FieldValue {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (e) {
    throw new Error(`not JSON: ${e instanceof Error ? e.message : e}`);
  }
  return fromJson(v, 0);
}

// A header or argument from a form field, as the CLI's KEY:TYPE=VALUE.
// Throws with a readable message.
export function toField(type: HeaderType, raw: string): FieldValue {
  switch (type) {
    case "int": {
      const s = raw.trim();
      if (!/^[+-]?\d+$/.test(s)) throw new Error(`${quoted(raw)} is not a 64-bit integer`);
      const n = BigInt(s);
      if (n < INT64_MIN || n > INT64_MAX) throw new Error(`${quoted(raw)} is not a 64-bit integer`);
      return { kind: { oneofKind: "intValue", intValue: n.toString() } };
    }
    case "float": {
      const n = Number(raw);
      if (raw.trim() === "" || Number.isNaN(n)) throw new Error(`${quoted(raw)} is not a number`);
      // The broker closes the connection on NaN or infinity in a table.
      if (!Number.isFinite(n)) throw new Error(`${quoted(raw)} is not finite (RabbitMQ refuses NaN and infinity)`);
      return { kind: { oneofKind: "doubleValue", doubleValue: n } };
    }
    case "bool": {
      const s = raw.trim();
      if (TRUE_WORDS.test(s)) return { kind: { oneofKind: "boolValue", boolValue: true } };
      if (FALSE_WORDS.test(s)) return { kind: { oneofKind: "boolValue", boolValue: false } };
      throw new Error(`${quoted(raw)} is not true or false`);
    }
    case "bytes":
      return { kind: { oneofKind: "bytesValue", bytesValue: parseBase64(raw) } };
    case "timestamp":
      return parseTimestamp(raw);
    case "json":
      return jsonField(raw);
    case "decimal": {
      const m = raw.match(/^(\d*)(?:\.(\d*))?$/);
      const digits = m === null ? "" : m[1] + (m[2] ?? "");
      const scale = m?.[2]?.length ?? 0;
      if (digits === "" || scale > 255 || BigInt(digits) >= 2n ** 32n) {
        throw new Error(`${quoted(raw)} is not a decimal (digits, one '.', < 2^32 unscaled)`);
      }
      return { kind: { oneofKind: "decimalValue", decimalValue: { scale, value: Number(digits) } } };
    }
    case "null":
      if (raw !== "") throw new Error("null takes no value");
      return { kind: { oneofKind: "nullValue", nullValue: 0 } };
    default:
      return stringField(raw);
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
