// The official JS SDK 4.x's durable endpoints (`inngest.endpoint()`), served to the
// Stepwise server. Modelled on the SDK's own integration tests (durableEndpoints/*): an
// endpoint that completes in its request, one that goes async (a sleep) and is re-entered
// by the server, ones that stream, one whose step always fails, and one that defers.
// Everything observable goes to the ledger, one JSON object a line:
//   {kind: "enter"}     the SDK entered a handler (the client's request, or a re-entry)
//   {kind: "step"}      a step body ran
//   {kind: "deferred"}  a deferred run ran
import fs from "node:fs";
import http from "node:http";
import { Inngest, step } from "inngest";
import { createDefer, getAsyncCtx } from "inngest/experimental";
import { stream } from "inngest/experimental/durable-endpoints";
import { endpointAdapter, serve, serveEndpoint } from "inngest/node";

const ledger = process.env.STEPWISE_TEST_LEDGER;
const record = (entry) =>
  fs.appendFileSync(ledger, `${JSON.stringify({ ...entry, t: Date.now() / 1000 })}\n`);

const inngest = new Inngest({
  id: "endpoints",
  isDev: true,
  baseUrl: process.env.STEPWISE_TEST_SERVER,
  endpointAdapter: endpointAdapter.withOptions({ retries: 3 }),
});

const runId = async () => (await getAsyncCtx())?.execution?.ctx?.runId ?? null;
const entered = async (path, req) =>
  record({
    kind: "enter",
    path,
    run_id: await runId(),
    reentry: req.headers.has("x-run-id"),
    query: new URL(req.url).search,
  });
const ran = async (path, name, value) => {
  record({ kind: "step", path, step: name, run_id: await runId() });
  return value;
};

const later = createDefer(inngest, { id: "later", retries: 0 }, async (ctx) => {
  record({ kind: "deferred", run_id: ctx.runId, data: ctx.event.data, parents: ctx.parents });
  return "later done";
});

const endpoints = {
  // durableEndpoints/syncNoStream: steps in the request, the handler's Response as it is.
  "/sync": inngest.endpoint(async (req) => {
    await entered("/sync", req);
    const a = await step.run("a", () => ran("/sync", "a", "hello"));
    const b = await step.run("b", () => ran("/sync", "b", `${a} world`));
    return Response.json({ msg: b }, { status: 202, headers: { "x-my-header": "yes" } });
  }),
  // A plain value: 200 JSON.
  "/plain": inngest.endpoint(async (req) => {
    await entered("/plain", req);
    return await step.run("a", () => ran("/plain", "a", { n: 1 }));
  }),
  // durableEndpoints/asyncNoStream: a sleep makes it async; the server re-enters it.
  "/async": inngest.endpoint(async (req) => {
    await entered("/async", req);
    const a = await step.run("a", () => ran("/async", "a", "hello"));
    await step.sleep("nap", "1s");
    const b = await step.run("b", () => ran("/async", "b", `${a} world`));
    return Response.json(b, { status: 202 });
  }),
  // durableEndpoints/asyncStream: streams in the request, then from the re-entry.
  "/stream": inngest.endpoint(async (req) => {
    await entered("/stream", req);
    await step.run("a", async () => {
      stream.push("chunk-a");
      return ran("/stream", "a", "a");
    });
    await step.sleep("nap", "1s");
    await step.run("b", async () => {
      stream.push("chunk-b");
      return ran("/stream", "b", "b");
    });
    return "streamed";
  }),
  // durableEndpoints/syncStream: streams and completes in the request.
  "/stream-sync": inngest.endpoint(async (req) => {
    await entered("/stream-sync", req);
    const a = await step.run("a", async () => {
      stream.push("only-chunk");
      return ran("/stream-sync", "a", "a");
    });
    return Response.json({ a }, { status: 201, headers: { "x-my-header": "sync" } });
  }),
  // asyncStream "retries": the step fails every time; 1 attempt in the request, 3 re-entries.
  "/retry": inngest.endpoint(async (req) => {
    await entered("/retry", req);
    await step.run("flaky", async () => {
      stream.push("try");
      await ran("/retry", "flaky", null);
      throw new Error("always fails");
    });
    return "never";
  }),
  // Defers inside an endpoint's checkpoints: one kept, one aborted.
  "/defer": inngest.endpoint(async (req) => {
    await entered("/defer", req);
    const ctx = (await getAsyncCtx()).execution.ctx;
    ctx.defer("kept", { function: later, data: { from: "endpoint" } });
    const dropped = ctx.defer("dropped", { function: later, data: { from: "aborted" } });
    await step.run("a", () => ran("/defer", "a", "a"));
    dropped.abort();
    await step.sleep("nap", "1s");
    return await step.run("b", () => ran("/defer", "b", "deferred"));
  }),
};

const handler = serve({ client: inngest, functions: [later] });
const listeners = Object.fromEntries(
  Object.entries(endpoints).map(([path, fn]) => [path, serveEndpoint(fn)]),
);

http
  .createServer((req, res) => {
    const path = new URL(req.url, "http://localhost").pathname;
    if (path.startsWith("/api/inngest")) return handler(req, res);
    const listener = listeners[path];
    if (!listener) {
      res.statusCode = 404;
      return res.end();
    }
    return listener(req, res);
  })
  .listen(Number(process.env.PORT), "127.0.0.1");
