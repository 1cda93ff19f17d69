// amqpgw's browser view: every section talks grpc-web to the daemon that
// served this page.
import { initConnection } from "./connection";
import { consumeFrom, initConsume } from "./consume";
import { initExchanges } from "./exchanges";
import { initFreshness } from "./fresh";
import { initLog, log } from "./log";
import { initPublish, publishTo } from "./publish";
import { initQueuePage, setOnQueueShown } from "./queue";
import { initQueues } from "./queues";
import { initRouter } from "./router";

function main(): void {
  initLog();
  initFreshness();
  initConnection();
  initQueues();
  initQueuePage();
  initExchanges();
  initPublish();
  initConsume();
  setOnQueueShown((name) => {
    publishTo(name);
    consumeFrom(name);
  });
  initRouter();
  log("info", `grpc-web to ${location.origin}`);
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", main);
} else {
  main();
}
