// An app served by the official Inngest JS SDK (npm `inngest` 4.x) whose one function calls a
// model with `step.ai.infer`, through the Stepwise server's AI gateway. Every model of
// `step.ai.models` points at the test's local providers (STEPWISE_TEST_PROVIDERS); keys come
// from the providers' usual environment variables, as the models read them.
import http from "node:http";
import { Inngest } from "inngest";
import { serve } from "inngest/node";

const server = process.env.STEPWISE_TEST_SERVER;
const providers = process.env.STEPWISE_TEST_PROVIDERS;
const inngest = new Inngest({ id: "official-js-ai", isDev: true, baseUrl: server });

const models = (m) => ({
  openai: m.openai({ model: "gpt-test", baseUrl: `${providers}/openai/v1` }),
  "openai-responses": m.openaiResponses({ model: "gpt-test", baseUrl: `${providers}/openai/v1` }),
  anthropic: m.anthropic({
    model: "claude-test",
    baseUrl: `${providers}/anthropic/v1`,
    defaultParameters: { max_tokens: 64 },
  }),
  gemini: m.gemini({ model: "gemini-test", baseUrl: `${providers}/gemini/v1beta` }),
  grok: m.grok({ model: "grok-test", baseUrl: `${providers}/xai/v1` }),
  deepseek: m.deepseek({ model: "deepseek-test", baseUrl: `${providers}/deepseek/v1` }),
  azure: m.azureOpenai({
    model: "gpt-test",
    endpoint: `${providers}/azure/`,
    deployment: "gpt-deploy",
    apiVersion: "2024-10-21",
  }),
  // A local OpenAI-compatible server; the key the model finds in OPENAI_API_KEY goes along.
  compatible: m.openai({ model: "llama-test", baseUrl: `${providers}/local/v1` }),
});

const bodyFor = (provider, prompt) => {
  if (provider === "openai-responses") return { input: prompt };
  if (provider === "gemini") return { contents: [{ role: "user", parts: [{ text: prompt }] }] };
  return { messages: [{ role: "user", content: prompt }] };
};

const textOf = (provider, answer) => {
  if (provider === "anthropic") return answer.content.filter((b) => b.type === "text").map((b) => b.text).join("");
  if (provider === "gemini") return answer.candidates[0].content.parts.map((p) => p.text).join("");
  if (provider === "openai-responses")
    return answer.output
      .filter((i) => i.type === "message")
      .flatMap((i) => i.content)
      .filter((c) => c.type === "output_text")
      .map((c) => c.text)
      .join("");
  return answer.choices[0].message.content;
};

const infer = inngest.createFunction(
  { id: "infer", triggers: [{ event: "ai/infer" }], retries: 1 },
  async ({ event, step }) => {
    const { provider, prompt } = event.data;
    try {
      const answer = await step.ai.infer("ask", {
        model: models(step.ai.models)[provider],
        body: bodyFor(provider, prompt),
      });
      return { text: textOf(provider, answer) };
    } catch (err) {
      return { error: err.name, message: err.message };
    }
  },
);

const handler = serve({ client: inngest, functions: [infer] });
http
  .createServer((req, res) => {
    if (req.url.startsWith("/api/inngest")) return handler(req, res);
    res.statusCode = 404;
    res.end();
  })
  .listen(Number(process.env.PORT), "127.0.0.1");
