// How old the data on screen is. Each polled section has a Freshness: its
// marker reads "updated 3 s ago" while polls succeed and "stale · updated
// 41 s ago" once they fail (the card gets data-stale="true", which greys
// its numbers), so nothing on screen looks current when it is not.
import { type CallError } from "./api";

const all: Freshness[] = [];

export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export class Freshness {
  private last: number | undefined;
  private failure: CallError | undefined;

  // `marker` shows the age; `scope` is marked stale (data-stale).
  constructor(private readonly marker: HTMLElement, private readonly scope: HTMLElement) {
    all.push(this);
    this.render();
  }

  ok(): void {
    this.last = Date.now();
    this.failure = undefined;
    this.render();
  }

  fail(err: CallError): void {
    this.failure = err;
    this.render();
  }

  // Forget the data (another queue, a new filter): nothing to be stale.
  reset(): void {
    this.last = undefined;
    this.failure = undefined;
    this.render();
  }

  get stale(): boolean {
    return this.failure !== undefined && this.last !== undefined;
  }

  render(): void {
    const age = this.last === undefined ? undefined : formatAge(Date.now() - this.last);
    let text: string;
    if (this.failure === undefined) {
      text = age === undefined ? "loading…" : `updated ${age} ago`;
    } else if (age === undefined) {
      text = `no data (${this.failure.code})`;
    } else {
      text = `stale · updated ${age} ago (${this.failure.code})`;
    }
    this.marker.textContent = text;
    this.marker.dataset.state = this.failure === undefined ? "fresh" : "stale";
    this.marker.title = this.failure === undefined ? ""
      : `the last refresh failed: ${this.failure.code}: ${this.failure.message}`;
    this.scope.dataset.stale = String(this.stale);
  }
}

export function initFreshness(): void {
  window.setInterval(() => { for (const f of all) f.render(); }, 1000);
}
