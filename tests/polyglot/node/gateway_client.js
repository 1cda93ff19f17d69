// amqpgw from Node.js: Publish, PublishBatch, a CLIENT-ack stream, a typed
// header round trip, PublishStream and a Subscribe consumer (in-stream acks,
// `stop`), with @grpc/grpc-js and @grpc/proto-loader loading gateway.proto at
// run time (no generated code).
//
//   node gateway_client.js --server 127.0.0.1:50051 --queue demo
'use strict';
const assert = require('node:assert/strict');
const path = require('node:path');
const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const { values: args } = parseArgs({
  options: {
    server: { type: 'string', default: '127.0.0.1:50051' },
    queue: { type: 'string' },
    proto: { type: 'string', default: path.join(__dirname, '../../../proto') },
  },
});

async function main() {
  const queue = args.queue;
  // --- snippet (docs/clients.md) ---
  const def = protoLoader.loadSync('amqpgw/v1/gateway.proto', {
    includeDirs: [args.proto], keepCase: true, longs: String, enums: String,
    defaults: true, oneofs: true,
  });
  const { amqpgw } = grpc.loadPackageDefinition(def);
  const gw = new amqpgw.v1.Gateway(args.server, grpc.credentials.createInsecure());
  // Unary calls as promises, each with a 10 s deadline.
  const call = (method, request) => new Promise((resolve, reject) =>
    gw[method](request, { deadline: Date.now() + 10000 },
      (err, response) => (err ? reject(err) : resolve(response))));

  await call('DeclareQueue', { name: queue, durable: false });

  // Publish answers once the broker has confirmed the message.
  const sent = await call('Publish', {
    routing_key: queue, body: Buffer.from('hello from node'),
    properties: {
      content_type: 'text/plain',
      headers: {
        attempt: { int_value: 5 },
        urgent: { bool_value: true },
        blob: { bytes_value: Buffer.from([0, 1, 255]) },
        meta: { table_value: { fields: { region: { string_value: 'eu' } } } },
      },
    },
  });

  // PublishBatch: one result per message, in order.
  const batch = await call('PublishBatch', {
    messages: [0, 1, 2].map((i) => ({ routing_key: queue, body: Buffer.from(`batch ${i}`) })),
  });
  assert.equal(batch.ok_count, 3);

  // A stream with CLIENT acks: ack each delivery once handled. The stream
  // ends by itself after max_messages, all acked.
  const received = [];
  await new Promise((resolve, reject) => {
    const stream = gw.StreamMessages(
      { queue, ack_mode: 'CLIENT', max_messages: 4, prefetch: 10 },
      { deadline: Date.now() + 30000 });
    let subscription;
    stream.on('data', (event) => {
      if (event.event === 'subscribed') {
        subscription = event.subscribed.subscription_id;
      } else if (event.event === 'delivery') {
        received.push(event.delivery);
        call('Ack', { subscription_id: subscription,
                      delivery_ids: [event.delivery.delivery_id] }).catch(reject);
      }
    });
    stream.on('error', reject);
    stream.on('end', resolve);
  });
  // --- end of snippet ---

  assert.deepEqual(received.map((d) => d.body.toString()),
    ['hello from node', 'batch 0', 'batch 1', 'batch 2']);
  assert.deepEqual(received.map((d) => d.delivery_id), ['1', '2', '3', '4']);
  const first = received[0];
  assert.equal(first.properties.message_id, sent.message_id);
  assert.equal(first.properties.content_type, 'text/plain');
  const h = first.properties.headers;
  assert.equal(h.attempt.kind, 'int_value');
  assert.equal(h.attempt.int_value, '5');  // int64 as a string (longs: String)
  assert.equal(h.urgent.bool_value, true);
  assert.deepEqual([...h.blob.bytes_value], [0, 1, 255]);
  assert.equal(h.meta.table_value.fields.region.string_value, 'eu');
  const left = await call('InspectQueue', { name: queue });
  assert.equal(left.message_count, 0);

  // Many messages on one stream, each answered (by its sequence, in any
  // order) once the broker has confirmed it; at most max_in_flight (read
  // from the first request) unconfirmed at a time.
  // --- snippet: PublishStream (docs/clients.md) ---
  const confirmed = new Set();
  await new Promise((resolve, reject) => {
    const stream = gw.PublishStream({ deadline: Date.now() + 60000 });
    stream.on('data', (answer) => {
      if (answer.result.code === 0) {
        confirmed.add(answer.sequence);  // a string (longs: String)
      } else {
        console.log(answer.sequence, answer.result.error);
      }
    });
    stream.on('error', reject);
    stream.on('end', resolve);
    for (let i = 1; i <= 100; i++) {
      stream.write({ sequence: i, max_in_flight: 64,
                     message: { routing_key: queue, body: Buffer.from(`s${i}`) } });
    }
    stream.end();  // half-close: every message is answered, then 'end'
  });
  // --- end of snippet ---
  assert.equal(confirmed.size, 100);
  assert.ok(confirmed.has('1') && confirmed.has('100'));
  const streamed = await call('InspectQueue', { name: queue });
  assert.equal(streamed.message_count, 100);

  // 500 in all (s1..s100, then p0..p399) for the Subscribe snippet.
  await call('PublishBatch', {
    messages: [...Array(400).keys()].map((i) => ({ routing_key: queue, body: Buffer.from(`p${i}`) })),
  });
  const published = [...Array(100).keys()].map((i) => `s${i + 1}`)
    .concat([...Array(400).keys()].map((i) => `p${i}`));

  // --- snippet: Subscribe (docs/clients.md) ---
  // At-least-once: each batch is acked on the stream only after all of its
  // deliveries were processed; whatever is not acked when the stream ends
  // goes back to the queue. To stop cleanly, write `stop` (no more
  // deliveries), go on processing and acking what still arrives, and the
  // gateway sends a `summary` and ends the stream once nothing is
  // outstanding; then end() our side. Here it stops after `limit` messages;
  // a service would write the stop on SIGTERM.
  const consume = (queue, handle, limit) => new Promise((resolve, reject) => {
    // No deadline: a consumer runs until it stops. A cancel or a crash also
    // requeues everything unacked.
    const stream = gw.Subscribe();
    let processed = 0;
    let stopping = false;
    let summary = null;
    stream.on('data', async (r) => {
      if (r.event === 'batch') {
        stream.pause();  // one batch at a time, in order
        try {
          const ids = [];
          for (const d of r.batch.deliveries) {
            await handle(d);  // your work (may be async)
            ids.push(d.delivery_id);
          }
          processed += ids.length;
          stream.write({ ack: { delivery_ids: ids } });
          if (processed >= limit && !stopping) {
            stream.write({ stop: {} });
            stopping = true;
          }
        } catch (err) {
          stream.cancel();  // unacked deliveries go back to the queue
          reject(err);
        }
        stream.resume();
      } else if (r.event === 'ack' && r.ack.stale_ids.length > 0) {
        // Delivered before a reconnect: the broker redelivers them
        // (redelivered true) under new ids.
        console.log('stale:', r.ack.stale_ids);
      } else if (r.event === 'summary') {
        summary = r.summary;  // delivered, acked, rejected, requeued
      }
    });
    stream.on('error', reject);
    stream.on('end', () => {
      stream.end();  // half-close our side
      resolve({ processed, summary });
    });
    stream.write({ start: { queue, prefetch: 100, max_batch: 64 } });
  });
  // --- end of snippet ---

  const readyBecomes = async (count) => {
    const deadline = Date.now() + 20000;
    for (;;) {
      const { message_count } = await call('InspectQueue', { name: queue });
      if (message_count === count) return;
      assert.ok(Date.now() < deadline, `queue holds ${message_count}, not ${count}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const bodies = [];
  const take = (d) => { bodies.push(d.body.toString()); };
  const run1 = await consume(queue, take, 60);
  // The stop went with the ack that reached 60 (at most 59 + a batch of 64);
  // before its basic.cancel, the broker may have refilled the window
  // (prefetch 100).
  assert.ok(run1.processed >= 60 && run1.processed <= 59 + 64 + 100, `${run1.processed}`);
  assert.deepEqual(run1.summary, { delivered: `${run1.processed}`,
    acked: `${run1.processed}`, rejected: '0', requeued: '0' });
  await readyBecomes(500 - run1.processed);
  const run2 = await consume(queue, take, 500 - run1.processed);
  assert.equal(run2.processed, 500 - run1.processed);
  assert.deepEqual(run2.summary, { delivered: `${run2.processed}`,
    acked: `${run2.processed}`, rejected: '0', requeued: '0' });
  // Every message processed exactly once, none left.
  assert.deepEqual([...bodies].sort(), [...published].sort());
  await readyBecomes(0);
  await call('DeleteQueue', { name: queue });
  gw.close();
  console.log('node: ok');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
