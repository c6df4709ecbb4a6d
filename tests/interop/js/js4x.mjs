// The official JS SDK 4.x's defers, run and step metadata (and scores), and sessions,
// served to the Stepwise server. Modelled on the SDK's own integration tests (defer/*,
// traces/stepMetadata, scoring/primitive, sessions). Everything observable goes to the
// ledger, one JSON object a line:
//   {kind: "enter"}     the SDK entered a function (one per call request)
//   {kind: "deferred"}  a deferred run ran: its data, parents and sessions
//   {kind: "sessions"}  what a run saw: ctx.sessions and its events' meta
//   {kind: "reply"}     the ops the app answered a call with
import fs from "node:fs";
import http from "node:http";
import { Inngest } from "inngest";
import { createDefer, metadataMiddleware, scoreMiddleware } from "inngest/experimental";
import { serve } from "inngest/node";

const ledger = process.env.STEPWISE_TEST_LEDGER;
const record = (entry) =>
  fs.appendFileSync(ledger, `${JSON.stringify({ ...entry, t: Date.now() / 1000 })}\n`);

const inngest = new Inngest({
  id: "js4x",
  isDev: true,
  baseUrl: process.env.STEPWISE_TEST_SERVER,
  middleware: [metadataMiddleware(), scoreMiddleware()],
});

const entered = (ctx, fn) => record({ kind: "enter", fn, run_id: ctx.runId, attempt: ctx.attempt });

// ---- defers ----------------------------------------------------------------------------

const later = createDefer(inngest, { id: "later", retries: 0 }, async (ctx) => {
  record({
    kind: "deferred",
    run_id: ctx.runId,
    data: ctx.event.data,
    parents: ctx.parents,
    sessions: ctx.sessions ?? null,
  });
  return "later done";
});

// defer/misc "re-encountered defer": the sleep makes the function run again from the top.
const deferComplete = inngest.createFunction(
  { id: "defer-complete", retries: 0, triggers: [{ event: "js4x/defer.complete" }] },
  async (ctx) => {
    entered(ctx, "defer-complete");
    ctx.defer("notify", { function: later, data: { from: "complete", n: ctx.event.data.n } });
    const doubled = await ctx.step.run("a", () => ctx.event.data.n * 2);
    await ctx.step.sleep("nap", "1s");
    return doubled;
  },
);

// A defer saved by a checkpoint in the same call that completes the run: the run's end
// must see it, though the call's state was read before the checkpoint.
const deferCheckpointed = inngest.createFunction(
  { id: "defer-checkpointed", retries: 0, triggers: [{ event: "js4x/defer.checkpointed" }] },
  async (ctx) => {
    entered(ctx, "defer-checkpointed");
    ctx.defer("notify", { function: later, data: { from: "checkpointed" } });
    return await ctx.step.run("a", () => "stepped");
  },
);

// defer/misc "defer fires when parent throws after defer() call", with and without
// checkpointing: the defer goes out in a checkpoint, or beside the function's error.
const failing = (id, checkpointing) =>
  inngest.createFunction(
    { id, retries: 0, checkpointing, triggers: [{ event: `js4x/${id}` }] },
    async (ctx) => {
      entered(ctx, id);
      ctx.defer("notify", { function: later, data: { from: id } });
      throw new Error("oh no");
    },
  );
const deferFail = failing("defer-fail", true);
const deferFailClassic = failing("defer-fail-classic", false);

// defer/abort: one aborted in the call that added it, one in a later call (after a step),
// one aborted inside a step.run; only "kept" starts.
const deferAbort = inngest.createFunction(
  { id: "defer-abort", retries: 0, triggers: [{ event: "js4x/defer.abort" }] },
  async (ctx) => {
    entered(ctx, "defer-abort");
    const now = ctx.defer("aborted-now", { function: later, data: { from: "aborted-now" } });
    now.abort();
    const afterStep = ctx.defer("aborted-later", {
      function: later,
      data: { from: "aborted-later" },
    });
    const inStep = ctx.defer("aborted-in-step", {
      function: later,
      data: { from: "aborted-in-step" },
    });
    ctx.defer("kept", { function: later, data: { from: "kept" } });
    await ctx.step.run("s", () => inStep.abort());
    afterStep.abort();
    await ctx.step.sleep("nap", "1s");
    return "done";
  },
);

// ---- metadata and scores ---------------------------------------------------------------

// traces/stepMetadata, scoring/primitive: metadata and scores written inside a step ride on
// its op; "run()" puts them on the run.
const metadata = inngest.createFunction(
  { id: "metadata", retries: 0, triggers: [{ event: "js4x/metadata" }] },
  async (ctx) => {
    entered(ctx, "metadata");
    await ctx.step.run("work", async () => {
      await inngest.metadata.set({ status: "ok", rows: 3 });
      await inngest.metadata.run().set({ phase: "scored" }, "progress");
      await inngest.score({ name: "quality", value: 0.9 });
      return "worked";
    });
    await ctx.step.run("other", () => "nothing");
    return ctx.runId;
  },
);

// The SDK writes to another run through POST /v1/runs/{id}/metadata: the run, one of its
// steps, a step it never had (2xx, nothing kept), and a score.
const metadataWriter = inngest.createFunction(
  { id: "metadata-writer", retries: 0, triggers: [{ event: "js4x/metadata.writer" }] },
  async (ctx) => {
    entered(ctx, "metadata-writer");
    const target = ctx.event.data.target;
    await ctx.step.run("write", async () => {
      await inngest.metadata.run(target).set({ by: "api" }, "review");
      await inngest.metadata.run(target).step("other").set({ note: "fine" });
      await inngest.metadata.run(target).step("no-such-step").set({ note: "lost" });
      await inngest.score({ runId: target, name: "api-score", value: true });
    });
    return "written";
  },
);

// ---- sessions ----------------------------------------------------------------------------

const seen = (ctx, role) =>
  record({
    kind: "sessions",
    role,
    run_id: ctx.runId,
    sessions: ctx.sessions ?? null,
    metas: ctx.events.map((e) => e.meta ?? null),
    data: ctx.event.data,
  });

const sessionsChild = inngest.createFunction(
  { id: "sessions-child", triggers: [{ event: "js4x/sessions.child" }] },
  async (ctx) => seen(ctx, `child-${ctx.event.data.via}`),
);

const sessionsInvoked = inngest.createFunction(
  { id: "sessions-invoked", triggers: [{ event: "js4x/sessions.never" }] },
  async (ctx) => {
    seen(ctx, "invoked");
    return "invoked";
  },
);

const sessionsParent = inngest.createFunction(
  { id: "sessions-parent", triggers: [{ event: "js4x/sessions.parent" }] },
  async (ctx) => {
    seen(ctx, "parent");
    await ctx.step.sendEvent("send", { name: "js4x/sessions.child", data: { via: "sendEvent" } });
    await ctx.step.sendEvent("send-override", {
      name: "js4x/sessions.child",
      data: { via: "override" },
      meta: { sessions: { org: "other", team: null } },
    });
    await ctx.step.run("bare", () =>
      inngest.send({ name: "js4x/sessions.child", data: { via: "send" } }),
    );
    await ctx.step.invoke("invoke", { function: sessionsInvoked, data: { via: "invoke" } });
    ctx.defer("deferred", { function: later, data: { from: "sessions" } });
    return "parent done";
  },
);

// sessions.test.ts "batch": a run's sessions are those all its events share.
const sessionsBatch = inngest.createFunction(
  {
    id: "sessions-batch",
    triggers: [{ event: "js4x/sessions.batch" }],
    batchEvents: { maxSize: 2, timeout: "5s" },
  },
  async (ctx) => {
    seen(ctx, "batch");
    return ctx.events.length;
  },
);

const functions = [
  later,
  deferComplete,
  deferCheckpointed,
  deferFail,
  deferFailClassic,
  deferAbort,
  metadata,
  metadataWriter,
  sessionsChild,
  sessionsInvoked,
  sessionsParent,
  sessionsBatch,
];
const handler = serve({ client: inngest, functions });

// The ops of every answer to a call, for the tests that check what went out with what.
function tapReply(req, res) {
  const chunks = [];
  const write = res.write.bind(res);
  const end = res.end.bind(res);
  res.write = (chunk, ...rest) => {
    if (chunk) chunks.push(Buffer.from(chunk));
    return write(chunk, ...rest);
  };
  res.end = (chunk, ...rest) => {
    if (chunk && typeof chunk !== "function") chunks.push(Buffer.from(chunk));
    return end(chunk, ...rest);
  };
  res.on("finish", () => {
    if (req.method !== "POST") return;
    let body = null;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {}
    const ops = Array.isArray(body) ? body.map((op) => op.op) : null;
    const fn = new URL(req.url, "http://localhost").searchParams.get("fnId");
    record({ kind: "reply", fn, status: res.statusCode, ops });
  });
}

http
  .createServer((req, res) => {
    if (!req.url.startsWith("/api/inngest")) {
      res.statusCode = 404;
      return res.end();
    }
    tapReply(req, res);
    return handler(req, res);
  })
  .listen(Number(process.env.PORT), "127.0.0.1");
