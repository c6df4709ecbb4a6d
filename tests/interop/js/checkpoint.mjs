// Functions of the official JS SDK 4.x that checkpoint (the default), served to the Stepwise
// server. Modelled on the SDK's own integration tests (checkpointing/*, retry, dispatchValidation,
// middleware/useCases/encoding). Everything observable goes to the ledger, one JSON object a line:
//   {kind: "enter"}   the SDK entered a function (one per call request)
//   {kind: "step"}    a step's code ran
//   {kind: "reply"}   the ops the app answered a call with
//   {kind: "fn_input"} what transformFunctionInput saw
import fs from "node:fs";
import http from "node:http";
import { Inngest, Middleware } from "inngest";
import { serve } from "inngest/node";

const server = process.env.STEPWISE_TEST_SERVER;
const ledger = process.env.STEPWISE_TEST_LEDGER;
// The proxy of the dispatch-validation test: calls go through it when it is set.
const serveOrigin = process.env.STEPWISE_TEST_SERVE_ORIGIN || undefined;

const inngest = new Inngest({ id: "cp-js", isDev: true, baseUrl: server });

const record = (entry) =>
  fs.appendFileSync(ledger, JSON.stringify({ ...entry, t: Date.now() / 1000 }) + "\n");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const entered = (ctx) => record({ kind: "enter", run_id: ctx.runId, attempt: ctx.attempt });
const ran = (ctx, step) => record({ kind: "step", run_id: ctx.runId, step, attempt: ctx.attempt });

const sequential = inngest.createFunction(
  { id: "sequential", retries: 0, triggers: [{ event: "cp/sequential" }] },
  async (ctx) => {
    entered(ctx);
    const a = await ctx.step.run("a", () => (ran(ctx, "a"), ctx.event.data.n));
    const b = await ctx.step.run("b", () => (ran(ctx, "b"), a * 2));
    return [a, b];
  },
);

// checkpointing/maxRuntime.test.ts: the runtime runs out at once.
const runtime = { retries: 0, checkpointing: { maxRuntime: 1 } };
const steplessRuntime = inngest.createFunction(
  { id: "runtime-stepless", ...runtime, triggers: [{ event: "cp/runtime.stepless" }] },
  async (ctx) => {
    entered(ctx);
    await sleep(2000);
    return "done";
  },
);
const betweenRuntime = inngest.createFunction(
  { id: "runtime-between", ...runtime, triggers: [{ event: "cp/runtime.between" }] },
  async (ctx) => {
    entered(ctx);
    await ctx.step.run("before", () => ran(ctx, "before"));
    await sleep(2000);
    await ctx.step.run("after", () => ran(ctx, "after"));
    return "done";
  },
);
const afterRuntime = inngest.createFunction(
  { id: "runtime-after", ...runtime, triggers: [{ event: "cp/runtime.after" }] },
  async (ctx) => {
    entered(ctx);
    await ctx.step.run("before", () => ran(ctx, "before"));
    await sleep(2000);
    return "done";
  },
);

// retry.test.ts, with a step before the failing ones so that one of them is checkpointed.
const retried = inngest.createFunction(
  { id: "retry", retries: 1, triggers: [{ event: "cp/retry" }] },
  async (ctx) => {
    entered(ctx);
    await ctx.step.run("pre", () => ran(ctx, "pre"));
    await ctx.step.run("a", () => {
      ran(ctx, "a");
      if (ctx.attempt === 0) throw new Error("a: error");
    });
    await ctx.step.run("b", () => {
      ran(ctx, "b");
      throw new Error("b: error");
    });
  },
);

// checkpointing/resumeAfterParallelism.test.ts
const parallel = inngest.createFunction(
  { id: "parallel", retries: 0, checkpointing: true, triggers: [{ event: "cp/parallel" }] },
  async (ctx) => {
    entered(ctx);
    const track = (name) => () => (ran(ctx, name), name);
    await ctx.step.run("seq-1", track("seq-1"));
    await ctx.step.run("seq-2", track("seq-2"));
    await Promise.all([
      ctx.step.run("par-1", track("par-1")),
      ctx.step.run("par-2", track("par-2")),
    ]);
    await ctx.step.run("after-1", track("after-1"));
    await ctx.step.run("after-2", track("after-2"));
    await ctx.step.run("after-3", track("after-3"));
    return "done";
  },
);

// dispatchValidation.test.ts: the first step outlives the proxy's 504.
const zombie = inngest.createFunction(
  { id: "zombie", retries: 1, triggers: [{ event: "cp/zombie" }] },
  async (ctx) => {
    entered(ctx);
    await ctx.step.run("", async () => {
      ran(ctx, "a");
      await sleep(11_000);
    });
    await ctx.step.run("b", () => ran(ctx, "b"));
    await ctx.step.run("c", () => ran(ctx, "c"));
    await ctx.step.run("d", () => ran(ctx, "d"));
  },
);

// For the crash test: three steps, each checkpointed before the next starts.
const crashable = inngest.createFunction(
  { id: "crashable", retries: 2, triggers: [{ event: "cp/crash" }] },
  async (ctx) => {
    entered(ctx);
    const out = [];
    for (const name of ["s1", "s2", "s3"]) {
      out.push(await ctx.step.run(name, () => (ran(ctx, name), name)));
    }
    return out;
  },
);

// middleware/useCases/encoding.test.ts: outputs are base64-wrapped by middleware.
const marker = "__INNGEST_BASE64_SERIALIZER__";
const isSerialized = (v) =>
  typeof v === "object" && v !== null && !Array.isArray(v) && Object.hasOwn(v, marker);
const encode = (v) => ({ [marker]: true, value: Buffer.from(JSON.stringify(v)).toString("base64") });
const decode = (v) => JSON.parse(Buffer.from(v.value, "base64").toString("utf-8"));

class EncodingMiddleware extends Middleware.BaseMiddleware {
  id = "stepwise-test:encoding";

  transformFunctionInput(arg) {
    const { ctx } = arg;
    record({
      kind: "fn_input",
      run_id: ctx.runId,
      attempt: ctx.attempt,
      max_attempts: ctx.maxAttempts ?? null,
      job_id_type: typeof ctx.jobId,
      request_id_type: typeof ctx.requestId,
      steps: arg.steps,
    });
    return arg;
  }

  async wrapFunctionHandler({ next }) {
    const output = await next();
    // encode(undefined) throws: the run fails, as in the SDK's own test.
    return isSerialized(output) ? output : encode(output);
  }

  async wrapStepHandler({ next }) {
    const output = await next();
    return isSerialized(output) ? output : encode(output);
  }

  async wrapStep({ next }) {
    const output = await next();
    return isSerialized(output) ? decode(output) : output;
  }
}

const encoding = inngest.createFunction(
  {
    id: "encoding",
    retries: 0,
    middleware: [EncodingMiddleware],
    triggers: [{ event: "cp/encoding" }],
  },
  async (ctx) => {
    entered(ctx);
    await ctx.step.run("step-1", () => ({ message: "hello", count: 42 }));
    await ctx.step.run("step-2", () => ["a", "b", "c"]);
    await ctx.step.sleep("sleep", "1s"); // a second call, after the sleep
  },
);

const handler = serve({
  client: inngest,
  functions: [
    sequential,
    steplessRuntime,
    betweenRuntime,
    afterRuntime,
    retried,
    parallel,
    zombie,
    crashable,
    encoding,
  ],
  serveOrigin,
});

// Record the ops of every answer to a call request, as the SDK's tests tap the server.
function tapReply(req, res) {
  const chunks = [];
  const write = res.write.bind(res);
  const end = res.end.bind(res);
  res.write = (chunk, ...rest) => {
    if (typeof chunk === "string" || chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk));
    return write(chunk, ...rest);
  };
  res.end = (chunk, ...rest) => {
    if (typeof chunk === "string" || chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk));
    return end(chunk, ...rest);
  };
  res.on("finish", () => {
    if (req.method !== "POST") return;
    let body = null;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {}
    const ops = Array.isArray(body)
      ? body.map((op) => ({ op: op.op, name: op.displayName ?? op.name ?? null }))
      : null;
    record({ kind: "reply", run_id: req.headers["x-run-id"] ?? null, status: res.statusCode, ops });
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
