// Where things are reported: the Activity log, short toasts, and each
// section's own error line (errors always with their gRPC code).
//
// Toasts sit in a slot of their own in the header bar (one line, the
// newest only), never over the page: they cannot cover a form.
import { type CallError, describeError } from "./api";
import { byId, h } from "./dom";

const MAX_LOG = 200;

export type Kind = "info" | "ok" | "error";

function now(): string {
  return new Date().toLocaleTimeString();
}

export function log(kind: Kind, text: string): void {
  const list = byId("log");
  list.prepend(h("li", { class: kind }, h("time", {}, now()), text));
  while (list.children.length > MAX_LOG) list.lastElementChild?.remove();
}

let toastTimer: number | undefined;

export function toast(kind: Kind, text: string): void {
  const box = byId("toasts");
  const t = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status", title: text }, text);
  box.replaceChildren(t);
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => t.remove(), kind === "error" ? 8000 : 3500);
}

// Shows a failed call in its section (`errorId`), the log and (unless
// `quiet`, for polls that fail again and again) a toast. Returns the error.
export function reportError(errorId: string, call: string, e: unknown,
                            quiet = false): CallError {
  const err = describeError(e);
  const line = byId(errorId);
  line.replaceChildren(h("b", {}, err.code), `${call}: ${err.message}`);
  line.dataset.code = err.code;
  line.hidden = false;
  if (!quiet) {
    log("error", `${call} failed: ${err.code}: ${err.message}`);
    toast("error", `${call}: ${err.code}: ${err.message}`);
  }
  return err;
}

export function clearError(errorId: string): void {
  const line = byId(errorId);
  line.hidden = true;
  line.replaceChildren();
  delete line.dataset.code;
}

export function initLog(): void {
  byId("clear-log").addEventListener("click", () => byId("log").replaceChildren());
}
