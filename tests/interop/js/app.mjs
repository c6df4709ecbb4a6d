// An app served by the official Inngest JS SDK (npm `inngest`), talking to the Stepwise server.
import fs from "node:fs";
import http from "node:http";
import { Inngest, NonRetriableError } from "inngest";
import { serve } from "inngest/node";

const server = process.env.STEPWISE_TEST_SERVER;
const ledger = process.env.STEPWISE_TEST_LEDGER;

const signingKey = process.env.STEPWISE_TEST_SIGNING_KEY;
const inngest = signingKey
  ? new Inngest({ id: "official-js", isDev: false, signingKey, eventKey: "test-event-key", baseUrl: server })
  : new Inngest({ id: "official-js", isDev: true, baseUrl: server });

const record = (runId, step, attempt) =>
  fs.appendFileSync(ledger, JSON.stringify({ run_id: runId, step, attempt }) + "\n");

const threeSteps = inngest.createFunction(
  { id: "three-steps", triggers: [{ event: "interop/three" }], retries: 2 },
  async ({ event, step, runId, attempt }) => {
    const a = await step.run("first", () => {
      record(runId, "first", attempt);
      return event.data.n;
    });
    await step.sleep("nap", "1s");
    const b = await step.run("second", () => {
      record(runId, "second", attempt);
      if (event.data.fail_second_once && attempt === 0) throw new Error("transient failure");
      return a * 2;
    });
    const sent = await step.sendEvent("announce", { name: "interop/announced", data: { b } });
    return { a, b, sent: sent.ids.length };
  },
);

const fails = inngest.createFunction(
  { id: "fails", triggers: [{ event: "interop/fail" }] },
  async () => {
    throw new NonRetriableError("no way");
  },
);

const handler = serve({ client: inngest, functions: [threeSteps, fails] });
http
  .createServer((req, res) => {
    if (req.url.startsWith("/api/inngest")) return handler(req, res);
    res.statusCode = 404;
    res.end();
  })
  .listen(Number(process.env.PORT), "127.0.0.1");
