// amqpgw's browser view: every section talks grpc-web to the daemon that
// served this page.
import { initConnection } from "./connection";
import { consumeFrom, initConsume } from "./consume";
import { initLog, log } from "./log";
import { initPublish, publishTo } from "./publish";
import { initQueues, setQueueActions } from "./queues";

function main(): void {
  initLog();
  setQueueActions({ consume: consumeFrom, publish: publishTo });
  initConnection();
  initQueues();
  initPublish();
  initConsume();
  log("info", `grpc-web to ${location.origin}`);
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", main);
} else {
  main();
}
