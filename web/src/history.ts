// Samples of each queue's depth and rates, kept in memory while the page is
// open (the API gives the present only): every queue-list refresh and every
// refresh of a queue's page adds one. At most MAX_AGE_S of samples per
// queue and MAX_QUEUES queues (the least recently sampled go first).
import type { QueueInfo } from "./gen/amqpgw/v1/gateway";

const MAX_AGE_S = 15 * 60;
const MAX_QUEUES = 500;
// Samples closer together than this replace each other.
const MIN_STEP_S = 1;

export interface Sample {
  t: number;  // Unix seconds
  ready: number | null;
  unacked: number | null;
  publish: number | null;
  deliver: number | null;
}

const history = new Map<string, Sample[]>();

function add(name: string, s: Sample): void {
  let list = history.get(name);
  if (list === undefined) {
    list = [];
  } else {
    history.delete(name);  // re-insert: the map's order is least recent first
  }
  history.set(name, list);
  const last = list[list.length - 1];
  if (last !== undefined && s.t - last.t < MIN_STEP_S) list[list.length - 1] = s;
  else list.push(s);
  while (list.length > 0 && list[0].t < s.t - MAX_AGE_S) list.shift();
  while (history.size > MAX_QUEUES) history.delete(history.keys().next().value as string);
}

// From the management API's view of the queue (ListQueues, InspectQueue's
// details).
export function recordInfo(q: QueueInfo): void {
  add(q.name, {
    t: Date.now() / 1000,
    ready: Number(q.ready),
    unacked: Number(q.unacked),
    publish: q.rates?.publish ?? null,
    deliver: q.rates?.deliver ?? null,
  });
}

// From AMQP alone (InspectQueue without the management API): ready only.
export function recordReady(name: string, ready: number): void {
  add(name, { t: Date.now() / 1000, ready, unacked: null, publish: null, deliver: null });
}

export function samples(name: string): readonly Sample[] {
  return history.get(name) ?? [];
}

export function forgetQueue(name: string): void {
  history.delete(name);
}
