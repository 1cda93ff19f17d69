// The page's views, chosen by the URL's hash:
//   #/queues              the queue list (the default)
//   #/queues/<name>       one queue's page
//   #/exchanges           the exchange list
//   #/exchanges/<name>    the same, with that exchange's bindings open
//                         ("#/exchanges/" alone: the default exchange)
// Each view's module registers an `enter` (called with the decoded name on
// every change of route) and a `leave`; only the visible view polls.
import { byId } from "./dom";

export type ViewName = "queues" | "queue" | "exchanges";

export interface Route {
  view: ViewName;
  name?: string;
}

interface View {
  enter(route: Route): void;
  leave(): void;
}

const views = new Map<ViewName, View>();
let current: ViewName | undefined;

export function parseRoute(hash: string): Route {
  const m = hash.match(/^#\/(queues|exchanges)(?:\/(.*))?$/);
  if (m === null) return { view: "queues" };
  const name = m[2] === undefined ? undefined : safeDecode(m[2]);
  if (m[1] === "queues") return name === undefined || name === "" ? { view: "queues" } : { view: "queue", name };
  return { view: "exchanges", name };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function queueHref(name: string): string {
  return `#/queues/${encodeURIComponent(name)}`;
}

export function exchangeHref(name: string): string {
  return `#/exchanges/${encodeURIComponent(name)}`;
}

export function registerView(name: ViewName, v: View): void {
  views.set(name, v);
}

export function navigate(hash: string): void {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function route(): void {
  const r = parseRoute(location.hash);
  if (current !== undefined && current !== r.view) views.get(current)?.leave();
  current = r.view;
  for (const name of ["queues", "queue", "exchanges"] as ViewName[]) {
    byId(`view-${name}`).hidden = name !== r.view;
  }
  for (const a of document.querySelectorAll<HTMLElement>("[data-nav]")) {
    const active = a.dataset.nav === (r.view === "queue" ? "queues" : r.view);
    if (active) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  views.get(r.view)?.enter(r);
}

export function currentRoute(): Route {
  return parseRoute(location.hash);
}

export function initRouter(): void {
  window.addEventListener("hashchange", route);
  route();
}
