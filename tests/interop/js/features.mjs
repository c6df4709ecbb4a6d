// An app of the official Inngest JS SDK, 3.x or 4.x, with one function per feature the SDK
// emits: waits, invokes, parallel steps, onFailure, cancelOn, every flow-control option,
// step.fetch, and state large enough that the server hands it over through its API.
//
// STEPWISE_TEST_SDK picks the package: "inngest" (4.x) or "inngest3" (the npm alias of 3.x in
// package.json). Both serve the same function ids, so one set of tests checks both. The
// ledger gets one line per function entry (kind "enter") and per step body (kind "step").
import fs from "node:fs";
import http from "node:http";

const sdk = process.env.STEPWISE_TEST_SDK ?? "inngest";
const { Inngest, NonRetriableError } = await import(sdk);
const { serve } = await import(`${sdk}/node`);
const v3 = sdk === "inngest3";

const ledger = process.env.STEPWISE_TEST_LEDGER;
const record = (entry) => fs.appendFileSync(ledger, `${JSON.stringify({ ...entry, at: Date.now() })}\n`);
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const appId = process.env.STEPWISE_TEST_APP_ID ?? (v3 ? "features-js3" : "features-js4");
const signingKey = process.env.STEPWISE_TEST_SIGNING_KEY;
const baseUrl = process.env.STEPWISE_TEST_SERVER;
const inngest = signingKey
  ? new Inngest({ id: appId, isDev: false, signingKey, eventKey: "test-event-key", baseUrl })
  : new Inngest({ id: appId, isDev: true, baseUrl });

// 3.x takes the trigger as its own argument; 4.x takes it among the options.
const define = (options, handler) =>
  v3
    ? inngest.createFunction(options, { event: `feat/${options.id}` }, handler)
    : inngest.createFunction({ ...options, triggers: [{ event: `feat/${options.id}` }] }, handler);

// A step body on record: which function, run and token it ran for, as it starts and ends.
const work = (fn, runId, token, hold = 0) => async () => {
  record({ kind: "step", fn, run_id: runId, token, edge: "start" });
  if (hold) await pause(hold);
  record({ kind: "step", fn, run_id: runId, token, edge: "end" });
  return token;
};
const entered = (fn, runId, event) =>
  record({ kind: "enter", fn, run_id: runId, token: event.data.token });
const thrown = (err) => ({ name: err.name, message: err.message });

const functions = [];
const fn = (options, handler) => {
  const f = define(options, async (ctx) => {
    entered(options.id, ctx.runId, ctx.event);
    return handler(ctx);
  });
  functions.push(f);
  return f;
};

// ---- waits ----------------------------------------------------------------------------------
fn({ id: "wait-match", retries: 0 }, async ({ step }) => {
  const got = await step.waitForEvent("wait", { event: "feat/wake", match: "data.token", timeout: "60s" });
  return got?.data ?? null;
});
fn({ id: "wait-if", retries: 0 }, async ({ step }) => {
  const got = await step.waitForEvent("wait", {
    event: "feat/wake",
    if: "async.data.token == event.data.token && async.data.ok == true",
    timeout: "60s",
  });
  return got?.data ?? null;
});
fn({ id: "wait-timeout", retries: 0 }, async ({ step }) => {
  const got = await step.waitForEvent("wait", { event: "feat/never", match: "data.token", timeout: "1s" });
  return { got };
});

// ---- invoke ---------------------------------------------------------------------------------
const child = fn({ id: "child", retries: 0 }, async ({ event, step, runId }) =>
  step.run("double", async () => {
    await work("child", runId, event.data.token)();
    return event.data.n * 2;
  }),
);
const childFails = fn({ id: "child-fails", retries: 0 }, async () => {
  throw new NonRetriableError("child says no");
});
const childSlow = fn({ id: "child-slow", retries: 0 }, async ({ step }) => {
  await step.sleep("long", "30s");
  return "too late";
});
fn({ id: "invoke-ok", retries: 0 }, async ({ event, step }) =>
  step.invoke("call", { function: child, data: { n: 21, token: event.data.token } }),
);
fn({ id: "invoke-fail", retries: 0 }, async ({ step }) => {
  try {
    return { ok: await step.invoke("call", { function: childFails, data: {} }) };
  } catch (err) {
    return { caught: thrown(err) };
  }
});
fn({ id: "invoke-timeout", retries: 0 }, async ({ step }) => {
  try {
    return { ok: await step.invoke("call", { function: childSlow, data: {}, timeout: "1s" }) };
  } catch (err) {
    return { caught: thrown(err) };
  }
});

// ---- parallel steps -------------------------------------------------------------------------
fn({ id: "parallel", retries: 0 }, async ({ step }) => {
  const all = await Promise.all(["p1", "p2", "p3"].map((id) => step.run(id, () => id)));
  const after = await step.run("after", () => "after");
  return [...all, after];
});
fn({ id: "race", retries: 0 }, async ({ step, group }) => {
  const race = () =>
    Promise.race([
      step.run("fast", () => "fast"),
      step.run("slow", async () => {
        await pause(1500);
        return "slow";
      }),
    ]);
  // 4.x settles every promise of a Promise.* before going on unless asked for a race.
  return v3 ? race() : group.parallel({ mode: "race" }, race);
});

// ---- failure handler, cancellation, timeouts ------------------------------------------------
fn(
  {
    id: "on-failure",
    retries: 0,
    onFailure: async ({ event, error }) => ({
      failed_run: event.data.run_id,
      function_id: event.data.function_id,
      token: event.data.event.data.token,
      message: error.message,
    }),
  },
  async () => {
    throw new NonRetriableError("boom");
  },
);
fn({ id: "cancel-on", retries: 0, cancelOn: [{ event: "feat/cancel", match: "data.token" }] }, async ({ step }) => {
  await step.sleep("long", "60s");
  return "not cancelled";
});
fn({ id: "timeout-finish", retries: 0, timeouts: { finish: "1s" } }, async ({ step }) => {
  await step.sleep("long", "30s");
  return "not timed out";
});

// ---- flow control: each function runs one recorded step ------------------------------------
const flow = (id, options) =>
  fn({ id, retries: 0, ...options }, async ({ event, events, step, runId }) => {
    const token = event.data.token;
    await step.run("work", work(id, runId, token, event.data.hold ?? 0));
    return { token, n: event.data.n ?? null, batch: events.map((e) => e.data.n ?? null) };
  });
flow("concurrency", { concurrency: { limit: 1, key: "event.data.group" } });
flow("throttle", { throttle: { limit: 1, period: "60s", burst: 1, key: "event.data.group" } });
flow("rate-limit", { rateLimit: { limit: 1, period: "60s", key: "event.data.group" } });
flow("debounce", { debounce: { period: "2s", key: "event.data.group" } });
flow("batch", { batchEvents: { maxSize: 3, timeout: "30s", key: "event.data.group" } });
flow("priority", { concurrency: { limit: 1 }, priority: { run: "event.data.priority" } });
flow("idempotency", { idempotency: "event.data.group" });
flow("singleton-skip", { singleton: { key: "event.data.group", mode: "skip" } });
flow("singleton-cancel", { singleton: { key: "event.data.group", mode: "cancel" } });

// ---- step.fetch: the server makes the request -----------------------------------------------
const selfUrl = `http://127.0.0.1:${process.env.PORT}`;
fn({ id: "fetch", retries: 0 }, async ({ event, step }) => {
  const res = await step.fetch(`${selfUrl}/hello?token=${event.data.token}`, {
    method: "POST",
    headers: { "x-hello": "there" },
    body: "ping",
  });
  return { status: res.status, body: await res.json() };
});

// ---- state over the inline limit: the SDK fetches it from /v0/runs/{id}/{batch,actions} ----
const SIZE = 2_200_000;
fn({ id: "big-state", retries: 0 }, async ({ event, step, runId }) => {
  const token = event.data.token;
  const big = (name, ch) => step.run(name, async () => {
    await work(name, runId, token)();
    return ch.repeat(SIZE);
  });
  const a = await big("a", "a");
  const b = await big("b", "b");
  await step.sleep("nap", "1s"); // a new call, which carries no state, only use_api
  const summary = await step.run("sum", async () => {
    await work("sum", runId, token)();
    return { a: a.length, b: b.length, ends: a.at(-1) + b.at(-1) };
  });
  return { ...summary, token: event.data.token };
});

// ---- how many calls two steps cost: 3.x calls back per step, 4.x checkpoints ---------------
fn({ id: "two-steps", retries: 0 }, async ({ step }) => [
  await step.run("a", () => 1),
  await step.run("b", () => 2),
]);
fn({ id: "two-steps-checkpointed", retries: 0, checkpointing: true }, async ({ step }) => [
  await step.run("a", () => 1),
  await step.run("b", () => 2),
]);

// 3.x reads the signing key from the serve options, 4.x from the client's.
const handler = serve({ client: inngest, functions, ...(v3 && signingKey ? { signingKey } : {}) });
http
  .createServer((req, res) => {
    if (req.url.startsWith("/api/inngest")) return handler(req, res);
    if (req.url.startsWith("/hello")) {
      let body = "";
      req.on("data", (chunk) => {
        body += chunk;
      });
      req.on("end", () => {
        const token = new URL(req.url, selfUrl).searchParams.get("token");
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ token, method: req.method, header: req.headers["x-hello"], body }));
      });
      return;
    }
    res.statusCode = 404;
    res.end();
  })
  .listen(Number(process.env.PORT), "127.0.0.1");
