// An app of the official Inngest JS SDK (npm `inngest` 4.x) whose every exchange is on record.
//
// One ledger line for every call request it answers (kind "call": the function and step
// asked for, the run, the attempt, the status, no-retry header and body of the answer,
// written before the answer leaves), one for every `transformFunctionInput` middleware
// hook (kind "hook"), and one for each step body that ran (kind "step").
import fs from "node:fs";
import http from "node:http";
import { Readable } from "node:stream";
import { Inngest, Middleware, NonRetriableError } from "inngest";
import { serve } from "inngest/node";

const ledger = process.env.STEPWISE_TEST_LEDGER;
const record = (entry) => fs.appendFileSync(ledger, `${JSON.stringify(entry)}\n`);

class HookRecorder extends Middleware.BaseMiddleware {
  id = "exact:hooks";

  transformFunctionInput(arg) {
    record({
      kind: "hook",
      hook: "transformFunctionInput",
      fn: arg.fn.id(),
      run_id: arg.ctx.runId,
      attempt: arg.ctx.attempt,
      max_attempts: arg.ctx.maxAttempts,
      // The SDK reads these from the x-inngest-job-id and x-request-id headers.
      job_id_type: typeof arg.ctx.jobId,
      request_id_type: typeof arg.ctx.requestId,
      steps: Object.keys(arg.steps).sort(),
    });
    return arg;
  }
}

const inngest = new Inngest({
  id: "exact-js",
  isDev: true,
  baseUrl: process.env.STEPWISE_TEST_SERVER,
  middleware: [HookRecorder],
});

const ran = (runId, step, attempt) => record({ kind: "step", run_id: runId, step, attempt });
const on = (name) => [{ event: `exact/${name}` }];
// Step bodies that return their own name, on record.
const valueOf = (runId) => (name) => () => {
  ran(runId, name, 0);
  return name;
};

// How many times each run entered its function body: some cases change shape after the first.
const entries = new Map();
const enter = (runId) => {
  const n = (entries.get(runId) ?? 0) + 1;
  entries.set(runId, n);
  return n;
};

// ---- failed runs: the output is the SDK's error body --------------------------------------

const nonRetriable = inngest.createFunction(
  {
    id: "non-retriable",
    retries: 2,
    triggers: on("non-retriable"),
    onFailure: ({ event, error, runId, attempt }) => {
      record({
        kind: "on_failure",
        run_id: event.data.run_id,
        function_id: event.data.function_id,
        error: event.data.error,
        handed: { name: error.name, message: error.message },
        event_data: event.data.event?.data ?? null,
        attempt,
        handler_run_id: runId,
      });
    },
  },
  async () => {
    throw new NonRetriableError("no way");
  },
);

const stepError = inngest.createFunction(
  { id: "step-error", retries: 1, triggers: on("step-error") },
  async ({ step, runId, attempt }) => {
    await step.run("a fails", () => {
      ran(runId, "a fails", attempt);
      throw new Error("A failed!");
    });
    await step.run("b never runs", () => {
      ran(runId, "b never runs", attempt);
      return "b";
    });
  },
);

const disappearingStep = inngest.createFunction(
  { id: "disappearing-step", retries: 1, triggers: on("disappearing-step") },
  async ({ step, runId }) => {
    const steps = [step.run("p1", () => "p1"), step.run("p2", () => "p2")];
    // Step "p3" exists only on the first request: when it is targeted it has gone.
    if (enter(runId) === 1) steps.push(step.run("p3", () => "p3"));
    await Promise.all(steps);
    return await step.run("after", () => "after");
  },
);

// ---- request counts ---------------------------------------------------------------------------

const twoSteps = inngest.createFunction(
  { id: "two-steps", retries: 0, triggers: on("two-steps") },
  async ({ step }) => {
    const a = await step.run("a", () => 1);
    const b = await step.run("b", () => 2);
    return [a, b];
  },
);

const stepsThenSleep = inngest.createFunction(
  { id: "steps-then-sleep", retries: 0, triggers: on("steps-then-sleep") },
  async ({ step }) => {
    const one = await step.run("step-1", () => ({ message: "hello", count: 42 }));
    const two = await step.run("step-2", () => ["a", "b", "c"]);
    await step.sleep("sleep", "1s");
    return { one, two };
  },
);

const parallelThenStep = inngest.createFunction(
  { id: "parallel-then-step", retries: 0, triggers: on("parallel-then-step") },
  async ({ step, runId }) => {
    const value = valueOf(runId);
    const both = await Promise.all([step.run("p1", value("p1")), step.run("p2", value("p2"))]);
    const after = await step.run("after", value("after"));
    return [...both, after];
  },
);

const sleep = inngest.createFunction(
  { id: "sleep", retries: 0, triggers: on("sleep") },
  async ({ step }) => {
    await step.sleep("nap", "1s");
    return "woke";
  },
);

const wait = inngest.createFunction(
  { id: "wait", retries: 0, triggers: on("wait") },
  async ({ step }) => {
    const woken = await step.waitForEvent("wait", {
      event: "exact/wake",
      match: "data.token",
      timeout: "60s",
    });
    return woken === null ? null : woken.data;
  },
);

const invokeChild = inngest.createFunction(
  { id: "invoke-child", retries: 0, triggers: on("never") },
  async ({ step, event }) => {
    return await step.run("double", async () => {
      // A parent may ask for a slow child, to finish its other parallel steps first.
      await new Promise((resolve) => setTimeout(resolve, (event.data.delay ?? 0) * 1000));
      return (event.data.n ?? 0) * 2;
    });
  },
);

const invokeParent = inngest.createFunction(
  { id: "invoke-parent", retries: 0, triggers: on("invoke-parent") },
  async ({ step, runId }) => {
    return await step.invoke("call-child", {
      function: invokeChild,
      data: { n: 21, parent: runId },
    });
  },
);

const issueExample = inngest.createFunction(
  { id: "issue-example", retries: 0, triggers: on("issue-example") },
  async ({ step, runId }) => {
    const value = valueOf(runId);
    const [child, r1, r2, sent] = await Promise.all([
      step.invoke("call-child", {
        function: invokeChild,
        data: { n: 2, delay: 1, parent: runId },
      }),
      step.run("r1", value("r1")),
      step.run("r2", value("r2")),
      step.sendEvent("send", { name: "exact/sent", data: { parent: runId } }),
    ]);
    const after = await step.run("after", value("after"));
    return [child, r1, r2, sent.ids.length, after];
  },
);

const functions = [
  nonRetriable,
  stepError,
  disappearingStep,
  twoSteps,
  stepsThenSleep,
  parallelThenStep,
  sleep,
  wait,
  invokeChild,
  invokeParent,
  issueExample,
];

const handler = serve({ client: inngest, functions });

// The SDK reads the request body itself, so read it first and hand the SDK a replay of it.
const readAll = (req) =>
  new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });

const parse = (text) => {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
};

async function recordCall(req, res) {
  const raw = await readAll(req);
  const replay = Readable.from(raw.length ? [raw] : []);
  Object.assign(replay, {
    headers: req.headers,
    method: req.method,
    url: req.url,
    socket: req.socket,
  });
  const request = parse(raw.toString("utf8")) ?? {};
  const url = new URL(req.url, "http://app");
  let status = 200;
  let headers = {};
  const writeHead = res.writeHead.bind(res);
  res.writeHead = (code, hdrs) => {
    status = code;
    headers = Object.fromEntries(Object.entries(hdrs ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    return writeHead(code, hdrs);
  };
  const end = res.end.bind(res);
  res.end = (chunk, ...rest) => {
    const ctx = request.ctx ?? {};
    record({
      kind: "call",
      fn: url.searchParams.get("fnId"),
      step: url.searchParams.get("stepId"),
      run_id: ctx.run_id ?? null,
      attempt: ctx.attempt ?? null,
      disable_immediate_execution: ctx.disable_immediate_execution ?? null,
      fn_id_sent: ctx.fn_id ?? null,
      event: { name: request.event?.name ?? null, data: request.event?.data ?? null },
      status,
      no_retry: headers["x-inngest-no-retry"] ?? null,
      body: chunk === undefined ? null : parse(chunk.toString()),
    });
    return end(chunk, ...rest);
  };
  return handler(replay, res);
}

http
  .createServer((req, res) => {
    if (!req.url.startsWith("/api/inngest")) {
      res.statusCode = 404;
      res.end();
      return;
    }
    if (req.method === "POST") return recordCall(req, res);
    return handler(req, res);
  })
  .listen(Number(process.env.PORT), "127.0.0.1");
